"""``custsync stripe ...`` and ``custsync salesforce ...``: the account or org the catalog is bound to."""

from __future__ import annotations

import click

from domain.binding import AccountBinding, ExternalAccount
from entrypoints.cli.root import main, read_settings, require_real_integrations, with_backends
from entrypoints.container import Container


def _account_commands(system: str, credentials: str, account_word: str) -> None:
    """``custsync <system> binding`` and ``custsync <system> rebind``: the same for every integration."""

    @main.group(
        name=system,
        help=(
            f"The {system} {account_word} this catalog is bound to.\n\nThe first `custsync api` or `worker` records the "
            f"{account_word} (and its mode) of {credentials}; a later start with credentials of another {account_word} "
            "or mode refuses to run."
        ),
    )
    def group() -> None:
        pass

    @group.command("binding", help=f"Show the {account_word} the catalog is bound to, and the one {credentials} belongs to.")
    def binding() -> None:
        from application.errors import IntegrationError

        async def show(c: Container) -> tuple[AccountBinding | None, ExternalAccount | str]:
            async with c.uow_factory()() as uow:
                bound = await uow.bindings.get(system)
            actual: ExternalAccount | str
            try:
                actual = await getattr(c, system)().account()
            except IntegrationError as exc:
                actual = f"unknown ({exc})"
            return bound, actual

        bound, actual = with_backends(show, "bindings")
        click.echo(f"bound to:    {bound.account if bound else 'nothing yet (the first api/worker start binds)'}")
        click.echo(f"credentials' {account_word}: {actual}")

    @group.command(
        "rebind",
        help=(
            f"Bind the catalog to the {account_word} {credentials} belongs to now.\n\nOnly after you have made sure that "
            f"this {account_word} holds the customers the catalog is linked to: links to records another {account_word} "
            "holds break (404), and nothing in the catalog is changed for them."
        ),
    )
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def rebind_command(yes: bool) -> None:
        from application.accounts import rebind

        settings = read_settings()
        if system not in settings.integration_names:
            raise click.ClickException(f"{system} is not in INTEGRATIONS ({settings.integrations})")
        require_real_integrations(settings, f"custsync {system} rebind")
        if not yes:
            click.confirm(f"Bind this catalog to the {account_word} of {credentials}?", abort=True)
        old, new = with_backends(lambda c: rebind(getattr(c, system)(), c.uow_factory(), c.clock()), "bindings")
        click.echo(f"{system}: bound to {new.account} (was {old.account if old else 'unbound'})")


_account_commands("stripe", "STRIPE_SECRET_KEY", "account")
_account_commands("salesforce", "SALESFORCE_CLIENT_ID", "org")
