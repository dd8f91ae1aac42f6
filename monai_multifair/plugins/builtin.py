"""The built-in plugins, by module name (as datasette lists its default plugins).

The plugin manager imports each of these modules and registers it under its module name, with the same
machinery as a third-party plugin module, so it imports nothing it registers itself: this module is a
list of names. Each module implements the hooks of :mod:`~monai_multifair.plugins.hookspecs` for what it
defines: the encoders (one module: :mod:`monai_multifair.networks.encoders.plugin`), each fairness method
and each data source in its own module. A new built-in is its module plus one line here; a third-party
plugin is its module plus an entry point in the group ``monai_multifair.encoders``.
"""

#: The modules registered as plugins at start-up (also when auto-loading of installed plugins is off).
BUILTIN_PLUGINS: tuple[str, ...] = (
    # encoders
    "monai_multifair.networks.encoders.plugin",
    # fairness methods
    "monai_multifair.methods.erm",
    "monai_multifair.methods.multifair_modulation",
    "monai_multifair.methods.reweighting",
    "monai_multifair.methods.resampling",
    "monai_multifair.methods.group_dro",
    "monai_multifair.methods.fair_identity_scaling",
    "monai_multifair.methods.threshold_optimizer",
    # data sources
    "monai_multifair.data.cohort",
    "monai_multifair.data.fairvision",
    "monai_multifair.data.fairvlmed",
    "monai_multifair.data.manifest",
    "monai_multifair.data.ad_data",
    "monai_multifair.data.gse7390",
    "monai_multifair.data.support2",
)
