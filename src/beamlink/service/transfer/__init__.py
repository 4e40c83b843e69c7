"""The transfer domain: collections (data agents), their access rules, operations and transfers."""
