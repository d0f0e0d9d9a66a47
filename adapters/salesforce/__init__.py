"""Salesforce as an integration: catalog customers as Contacts (issue 13, in progress)."""
