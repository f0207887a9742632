"""The Faust side: topics, the app, agents and web views.

Only this package imports Faust.
"""
