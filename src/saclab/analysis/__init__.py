"""Reading finished runs; never trains, never imports launch (imports data and runs).

- ``runfiles``: finding runs on disk (seed directories, ``sweep.json``, ``study.json``, a run's x axis);
- ``stats``: mean, IQM and bootstrap CIs, and ``summarize_group``, the one summary of a group of runs;
- ``plots``: ``plot_curves``, the one curve plotter (mean and 95% bootstrap CI over seeds);
- ``summary``: what ``saclab summarize`` writes (table, CSV, Markdown, curves);
- the study report: ``numbers`` (every value) -> ``verdicts`` (which answer they support) ->
  ``figures`` and ``report`` (Jinja2 templates in ``templates/``, HTML by ``markdown``);
  ``critic`` loads the online agents' critics for it.
"""
