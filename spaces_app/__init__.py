"""The leaderboard Space app, installed as the package data ``hf_tsel.spaces_app``; see :mod:`hf_tsel.publish.space`."""
