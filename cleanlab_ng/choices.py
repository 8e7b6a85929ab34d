"""The names a user chooses among, in a module that imports nothing.

The command line builds its options and ``--help`` from these without loading torch,
scikit-learn or pandas; the modules that implement each choice take their names from here.
"""

#: every registered detector, in report order; each is the module of that name in
#: :mod:`cleanlab_ng.detectors`
DETECTOR_NAMES = ("bmm", "late_stopping", "recov", "confidence_drop", "linear_separation", "cl")
#: :func:`cleanlab_ng.merge.merge_scores`, the default first
MERGE_RULES = ("jury", "referee", "overlap", "agreement", "rank_mean", "vote")
#: :func:`cleanlab_ng.detectors.recov.detect`
RECOV_RULES = ("structure", "count", "joint", "bound", "binomial", "gmm", "auto")
#: :func:`cleanlab_ng.train.recov.train_recov`
RECOV_METRICS = ("class_margin", "accuracy")
#: :func:`cleanlab_ng.features.encode`
TABLE_FEATURES = ("auto", "linear", "kernel")
#: :func:`cleanlab_ng.export.export_cleaned`: drop every flagged sample; give the
#: mislabeled ones their suggested label and drop only the rest; or keep every sample and
#: add the report's verdict to the table or labels file
FIX_MODES = ("remove", "relabel", "mark")
#: :func:`cleanlab_ng.export.export_cleaned`
EXPORT_MODES = ("hardlink", "copy", "none")
