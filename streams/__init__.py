"""The Faust side: topic declarations, the app, agents and web views. Only this package imports Faust."""
