"""glue-customers: the HTTP service (entrypoint), its domain, auth and mail."""
