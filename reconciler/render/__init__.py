"""Renderers: turn results (problems, plans, reports) into text, JSON, markdown or GitHub output.

Renderers write to a stream they are given and never choose an exit code.
"""
