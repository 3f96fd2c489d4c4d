"""Outages supervisors post and the surge detector raises: the service that feeds the
detector from flow events, live alerts for consoles, news for callers who asked."""
