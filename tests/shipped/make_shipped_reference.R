# metafor's answers for the analyses of the data in data/raw/ and config/config.yaml
# (tests/shipped/test_shipped_reference.py).
#
# Not a code test: it checks whatever data and config the repository holds, so it is regenerated
# whenever they change. `make reference` runs the pipeline up to the effects and pooled tables, then
# this script from the repository root (needs R with metafor and jsonlite), then the comparison:
#     Rscript tests/shipped/make_shipped_reference.R
# Writes tests/shipped/shipped.json. Per study, metafor's escalc() recomputes yi and vi from the
# combined arm statistics the pipeline used (side statistics, rescaling factor and sign); reported
# contrasts enter as given. Per analysis, rma() + predict() + confint() with the analysis's method
# and CI method pool those yi/vi independently of tpsynth.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
tests <- c(wald = "z", hksj = "knha", hksj_adhoc = "adhoc")
num <- function(x) { if (is.null(x)) return(NA_real_); x <- as.numeric(x); x[!is.finite(x)] <- NA_real_; x }

eff <- read.csv("data/processed/effects.csv", stringsAsFactors = FALSE)
pooled <- read.csv("results/pooled.csv", stringsAsFactors = FALSE)
out <- list()
for (aid in pooled$analysis_id) {
  d <- eff[eff$analysis_id == aid, ]
  p <- pooled[pooled$analysis_id == aid, ]
  if (nrow(d) == 0) next
  yi <- d$yi; vi <- d$vi
  arms <- d$source == "arms"
  if (any(arms)) {
    a <- d[arms, ]
    if (p$measure %in% c("RR", "OR", "RD")) {
      es <- escalc(measure = p$measure, ai = a$int_events, n1i = a$int_n, ci = a$cmp_events, n2i = a$cmp_n,
                   add = 1/2, to = "only0", drop00 = TRUE)
      y <- as.numeric(es$yi); v <- as.numeric(es$vi)
    } else {
      es <- escalc(measure = p$measure, m1i = a$int_mean, sd1i = a$int_sd, n1i = a$int_n,
                   m2i = a$cmp_mean, sd2i = a$cmp_sd, n2i = a$cmp_n)
      y <- as.numeric(es$yi) * a$scale_factor * a$sign
      v <- as.numeric(es$vi) * a$scale_factor^2
    }
    yi[arms] <- y; vi[arms] <- v
  }
  res <- list(study_id = d$study_id, yi = yi, vi = vi, k = nrow(d))
  if (nrow(d) >= 2) {
    fit <- rma(yi = yi, vi = vi, method = p$method, test = tests[[p$ci_method]], control = ctrl)
    pr <- predict(fit)
    res <- c(res, list(estimate = num(fit$beta), se = num(fit$se), ci_low = num(fit$ci.lb),
                       ci_high = num(fit$ci.ub), pvalue = num(fit$pval), tau2 = num(fit$tau2),
                       i2 = num(fit$I2), h2 = num(fit$H2), q = num(fit$QE), q_pvalue = num(fit$QEp),
                       pi_low = num(pr$pi.lb), pi_high = num(pr$pi.ub), weight = num(weights(fit))))
    if (!(p$method %in% c("FE", "EE", "CE"))) {
      ci <- confint(fit, control = list(tol = 1e-12))
      res <- c(res, list(tau2_ci_low = num(ci$random["tau^2", "ci.lb"]), tau2_ci_high = num(ci$random["tau^2", "ci.ub"]),
                         i2_ci_low = num(ci$random["I^2(%)", "ci.lb"]), i2_ci_high = num(ci$random["I^2(%)", "ci.ub"])))
    }
    fe <- rma(yi = yi, vi = vi, method = "FE")
    res <- c(res, list(fe_estimate = num(fe$beta), fe_ci_low = num(fe$ci.lb), fe_ci_high = num(fe$ci.ub)))
  }
  out[[aid]] <- res
}
meta <- list(r_version = R.version.string, metafor_version = as.character(packageVersion("metafor")),
             made_from = "data/processed/effects.csv and results/pooled.csv of the data in data/raw/", analyses = out)
writeLines(toJSON(meta, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE), "tests/shipped/shipped.json")
