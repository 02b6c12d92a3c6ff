# Independent reference values for tests/test_bayes.py (tpsynth.bayes).
#
# Run by hand from the repository root:
#     Rscript tests/reference/make_bayes_reference.R
# Writes tests/reference/bayes.json. Needs metafor (escalc; brings metadat) and jsonlite. The
# quadrature itself is in tests/reference/bayes_quadrature.R.
#
# The normal-normal random-effects model y_i ~ N(mu, v_i + tau^2) with a prior on tau and a flat or
# normal prior on mu. Conditional on tau, mu is normal with closed-form moments; every posterior
# summary is a one-dimensional integral over tau, computed here with R's adaptive QUADPACK
# integrate() over log(tau) on the whole real line (rel.tol 1e-12), quantiles by uniroot()
# (tol 1e-13). This shares no code and no grid with tpsynth.bayes (Gauss-Legendre panels with an
# exact treatment of tau near 0), so agreement to 1e-6 checks both.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

source("tests/reference/bayes_quadrature.R")

cases <- list()
add <- function(name, y, v, family, p, mu_prior = NULL, mid = NULL) {
  r <- analyse(y, v, family, p, mu_prior, mid)
  cases[[length(cases) + 1]] <<- list(
    name = name, yi = as.numeric(y), vi = as.numeric(v), family = family, params = p,
    mu_prior = if (is.null(mu_prior)) NULL else mu_prior, mid = mid, result = r)
  cat(name, family, "done\n")
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
nor <- escalc(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i,
              data = dat.normand1999)
priors_ratio <- list(half_normal = 0.5, half_cauchy = 0.5, lognormal_tau2 = c(-2.56, 1.74),
                     log_t_tau2 = c(-3.44, 2.59, 5), uniform = 4)
priors_md <- list(half_normal = 20, half_cauchy = 10, lognormal_tau2 = c(4.6, 1.5),
                  log_t_tau2 = c(2.0, 2.27, 5), uniform = 200)
for (k in c(2, 3, 5)) {
  idx <- seq_len(k)
  for (f in names(priors_ratio))
    add(sprintf("bcg_k%d", k), bcg$yi[idx], bcg$vi[idx], f, priors_ratio[[f]], mid = log(1.25))
  for (f in names(priors_md))
    add(sprintf("normand1999_k%d", k), nor$yi[idx], nor$vi[idx], f, priors_md[[f]], mid = 5)
}
# normal prior on mu
add("bcg_k3_normal_mu", bcg$yi[1:3], bcg$vi[1:3], "half_normal", 0.5, mu_prior = c(0, 4), mid = log(1.25))
add("normand1999_k5_normal_mu", nor$yi[1:5], nor$vi[1:5], "log_t_tau2", c(2.0, 2.27, 5), mu_prior = c(-10, 20), mid = 5)
# two trials that agree (issue 9): 0.27 [-0.24, 0.77] and 0.26 [-0.23, 0.75]; SE = CI width / (2 * 1.96).
# The log-t prior's density of tau is unbounded at 0 and the likelihood is flat there.
se <- c(0.77 - -0.24, 0.75 - -0.23) / (2 * qnorm(0.975))
for (f in names(priors_ratio)) add("two_agreeing", c(0.27, 0.26), se^2, f, priors_ratio[[f]], mid = 0.2)

res <- list(
  generated_by = "tests/reference/make_bayes_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  method = "integrate() over log(tau), rel.tol 1e-12; uniroot() tol 1e-13",
  cases = cases)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, null = "null", pretty = TRUE),
           "tests/reference/bayes.json")
