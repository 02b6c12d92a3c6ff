# Independent quadrature for results/bayes.csv of the data in data/raw/ and config/config.yaml
# (tests/shipped/test_shipped_bayes.py).
#
# Not a code test: it checks whatever data and config the repository holds, so it is regenerated
# whenever they change (`make reference`). For every analysis in results/bayes.csv it takes the study
# effects of data/processed/effects.csv (themselves checked against metafor's escalc by
# make_shipped_reference.R), the prior written in bayes.csv's tau_prior / mu_prior columns and the
# MID, and recomputes every posterior summary with R's integrate() (tests/reference/bayes_quadrature.R).
# Writes tests/shipped/bayes.json.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
source("tests/reference/bayes_quadrature.R")

eff <- read.csv("data/processed/effects.csv", stringsAsFactors = FALSE)
bay <- read.csv("results/bayes.csv", stringsAsFactors = FALSE)
out <- list()
for (i in seq_len(nrow(bay))) {
  b <- bay[i, ]
  d <- eff[eff$analysis_id == b$analysis_id, ]
  pr <- parse_prior(b$tau_prior)
  mu <- if (b$mu_prior == "flat") NULL else parse_prior(sub("^normal", "normal", b$mu_prior))$params
  mid <- if (is.na(b$mid)) NULL else b$mid
  r <- analyse(d$yi, d$vi, pr$family, pr$params, mu, mid)
  out[[b$analysis_id]] <- list(k = nrow(d), tau_prior = b$tau_prior, mu_prior = b$mu_prior, mid = mid, result = r)
  cat(b$analysis_id, "done\n")
}
res <- list(
  generated_by = "tests/shipped/make_shipped_bayes_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  method = "integrate() over log(tau), rel.tol 1e-12; uniroot() tol 1e-13",
  analyses = out)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, null = "null", pretty = TRUE), "tests/shipped/bayes.json")
