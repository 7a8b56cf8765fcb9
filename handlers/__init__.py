"""Thin Slack handlers: parse a payload, make one call into store/, render, hand messages on."""
