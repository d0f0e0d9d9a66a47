"""What a settled sync record's note counts as (``custsync_deliveries_total{outcome}``): every note
the use cases write, by what it means."""

import pytest

from domain.sync import Outcome, outcome_of


@pytest.mark.parametrize(
    ("note", "outcome"),
    [
        (None, Outcome.SYNCED),
        ("created from stripe", Outcome.SYNCED),
        ("linked to catalog id 7", Outcome.SYNCED),
        ("deleted in stripe: deleted here too", Outcome.SYNCED),
        ("pushed to stripe by an operator (resync): name", Outcome.SYNCED),
        ("re-fetched", Outcome.SYNCED),
        ("conflict on name: latest_wins -> catalog value kept", Outcome.CONFLICT),
        ("conflict on email: latest_wins -> waiting for the stripe event's time", Outcome.CONFLICT),
        ("superseded: stripe no longer holds this event's name; no change (echo of a synced state)", Outcome.CONFLICT),
        ("no change (echo of a synced state)", Outcome.ECHO),
        ("no change (echo of a synced state); re-fetched", Outcome.ECHO),
        ("no change there; our pending change is sent again", Outcome.ECHO),
        ("no change", Outcome.UNCHANGED),
        ("no change (already equal)", Outcome.UNCHANGED),
        ("already deleted", Outcome.UNCHANGED),
        ("already tagged", Outcome.UNCHANGED),
        ("never synced", Outcome.UNCHANGED),
        ("ignored: stripe does not know cus_1 (404)", Outcome.UNCHANGED),
        ("unknown customer: nothing to delete", Outcome.UNCHANGED),
        ("customer is deleted here: ignored", Outcome.UNCHANGED),
        ("tagged by another installation (i-2): its tags left as they are", Outcome.UNCHANGED),
    ],
)
def test_a_note_tells_its_outcome(note, outcome):
    assert outcome_of(note) is outcome
