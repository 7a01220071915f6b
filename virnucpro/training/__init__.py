"""``virnucpro train`` and ``virnucpro evaluate``: a classifier of your own on the predict features.

* :mod:`.dataset`: labelled inputs -> the predict feature stages -> feature matrices (kept, reused);
* :mod:`.genbank`: the published CDS-based frame filter for GenBank inputs;
* :mod:`.recipe`: the published training loop (SGD, step decay, early stopping);
* :mod:`.metrics`: accuracy, precision, recall, F1, ROC AUC, confusion matrix (numpy);
* :mod:`.model_dir`: the ``MODEL_DIR`` format (safetensors + ``model.json`` + ``metrics.json``);
* :mod:`.train`, :mod:`.evaluate`: the two commands.
"""
