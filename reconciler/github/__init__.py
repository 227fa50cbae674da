"""Talking to GitHub itself: the REST client, the event a workflow runs for, and the flows
built on them (the sticky PR comment, the merge-time review gate, the drift issues).

The network is used only by :mod:`reconciler.github.client`; the bodies it posts are built by
:mod:`reconciler.render.comment`. Nothing here talks to the ModelsLab API.
"""
