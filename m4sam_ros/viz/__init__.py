"""Pictures for people: overlays and contact sheets (``visualize``), curves (``plots``).

Numpy, OpenCV and matplotlib only; imported by the apps, training, evaluation and the node's
message builders, never the other way round.
"""
