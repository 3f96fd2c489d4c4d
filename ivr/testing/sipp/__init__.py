"""SIPp scenarios shipped with Kanaal (package data, read by ivr.testing.sipcaller).

At-sign placeholders (e.g. ``@FROM@``) are filled in Python before a run;
[keyword] fields are SIPp's own.
"""
