"""Reading finished runs: statistics, plots and the study report; never trains (imports data, runs)."""
