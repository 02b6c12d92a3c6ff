# Shared helpers for the rules.


def raw_sheets(ancient_files=False):
    """The raw sheets as rule inputs (wrapped in ancient() where a rule reruns on content digests)."""
    files = list(SHEETS.values())
    return [ancient(f) for f in files] if ancient_files else files
