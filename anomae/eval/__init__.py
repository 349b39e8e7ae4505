"""Evaluation: public benchmarks and labelled files, baselines, metrics and reports.

``datasets`` loads cases, ``baselines`` are the simple detectors anomae is compared with,
``benchmark`` runs every detector in one harness (``anomae evaluate``), ``metrics`` and
``nab`` score them, ``evaluate`` scores labelled windows of ``anomae run``, ``compare`` puts
baselines beside the model in its report, ``report`` and ``plot`` present the results.
Nothing in the runtime (scoring, the monitor) imports this package.
"""
