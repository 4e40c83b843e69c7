"""Agents: the daemons that run at sites and connect outbound to the service (endpoints and collections)."""
