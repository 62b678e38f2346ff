"""Data on disk and made up: benchmark readers (``datasets``), the training clip sampler
(``clips``) and the domain-randomised synthetic world (``synth``).

May import ``model`` (the inference resize and depth normalisation, so training sees what the
predictor sees), ``msgs`` (bag writing) and ``util``; never ``predictor``, ``training``,
``evaluation``, ``ros`` or rclpy.
"""
