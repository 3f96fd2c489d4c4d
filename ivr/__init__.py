"""Kanaal: speech-routing voice IVR for Asterisk."""
