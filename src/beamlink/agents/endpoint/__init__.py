"""The compute endpoint agent: its config file, the engines that run tasks, and what runs in a worker.

Importing this package loads nothing heavy; Parsl is imported only when a parsl engine is configured.
"""
