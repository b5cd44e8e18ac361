"""The AttenCraft HTTP service: REST API, persistence, storage and tenancy (no ML imports here)."""
