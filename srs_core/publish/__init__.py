"""Book tooling, kept apart from the science code: the pipeline runner
(:mod:`.book`), the page check (:mod:`.pagecheck`), offline assets
(:mod:`.assets`) and the notebooks' regression references
(:mod:`.reference`). No module outside this package imports it; the
notebooks and tests do."""
