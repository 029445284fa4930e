"""The proving side: an artifact folder run on devices through their agents (``validate``), against a cloud
baseline (``compare``, ``cloud/``), summed up in reports with verdicts and CI gates (``report/``)."""
