"""One description per input: each family's market parameters and submissions as pydantic models.

A module per family (``inputs/<kind>.py``) defines ``Params`` (the market's parameters) and one model
per JSON submission kind (``Bid``, ``Cost``, ...). The same model is

* **nested by the scenario**: ``scenarios/<kind>.py``'s ``Config`` inherits ``Params`` (so a scenario
  file's field names stay flat) and its participant tables extend the submission models;
* **validated by the service**: the family's adapter (``service/adapters/<kind>.py``) validates a
  market's ``params`` and each submission's ``data`` with it (strictly: a string is not a number) and
  exposes it as ``params_model`` and ``submission_models``;
* **rendered by the portal**: ``service/portal/forms.py`` builds each form from the model's fields.

So a default, a bound or a choice is written once. Field metadata: ``title`` (the form's label),
``description`` (one line of help; the scenario reference prints it), ``ge``/``gt``/``le``/``lt``/
``min_length``/``max_length`` (bounds, checked everywhere) and ``json_schema_extra`` with the paper's
``symbol`` and the ``unit`` (``money`` is drawn as the market's currency in the portal).

The models import only pydantic (and numpy for a matrix check) and the scenario base, so the service
can read them cheaply. This package lists no family: each module is imported by its own scenario and
adapter.
"""
