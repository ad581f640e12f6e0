"""Authentication: password hashing, tokens, the login blocker, the request principal."""
