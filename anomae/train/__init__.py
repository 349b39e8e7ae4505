"""Training: the only part of anomae that imports torch (``pip install 'anomae[train]'``, or
``pip install -e '.[train]'`` from a checkout).

``noise`` corrupts inputs for denoising, ``model`` holds the networks, ``fit`` trains them
on scaled windows, ``export`` writes the one-file ONNX model with its parity check;
``step`` is one pipeline training step (scaler, fit, export), torch-free until it runs.
"""
