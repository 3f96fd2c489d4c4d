"""Callbacks in time slots: the flow's desk (offer, book, manage link) and the dialer
that calls customers back at slot time (see ``ivr.domain.callbacks`` for the rules)."""
