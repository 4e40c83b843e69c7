"""Identity and access: users, clients, tokens, groups, and the one permission layer."""
