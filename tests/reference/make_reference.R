# Reference values for tests/test_pooling.py and tests/test_small_study.py.
#
# Run by hand from the repository root:
#     Rscript tests/reference/make_reference.R
# Writes tests/reference/pooling.json and tests/reference/small_study.json.
# Needs the R packages metafor (which brings metadat) and jsonlite.
#
# Every model is fitted with tight convergence settings so that the Python
# implementation can be compared to a relative tolerance of 1e-6.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
ci_ctrl <- list(tol = 1e-12)
methods <- c("REML", "DL", "PM", "ML", "HE", "SJ", "EB", "FE")
tests <- c(wald = "z", hksj = "knha", hksj_adhoc = "adhoc")

num <- function(x) {
  # NULL/NA/NaN/Inf -> NA (written as JSON null); strips names/attributes
  if (is.null(x)) return(NA_real_)
  x <- as.numeric(x)
  x[!is.finite(x)] <- NA_real_
  x
}

fit_rma <- function(yi, vi, method, test) {
  fit <- try(suppressWarnings(rma(yi = yi, vi = vi, method = method, test = test,
                                  control = ctrl)), silent = TRUE)
  if (inherits(fit, "try-error")) {
    # Fisher scoring oscillates: metafor's remedy (help(rma)) is stepadj;
    # tpsynth does the same retry before falling back to DL
    fit <- suppressWarnings(rma(yi = yi, vi = vi, method = method, test = test,
                                control = c(ctrl, list(stepadj = 0.5))))
    attr(fit, "stepadj") <- TRUE
  }
  fit
}

summarise_fit <- function(fit, full = TRUE) {
  pr <- predict(fit)
  out <- list(
    beta = num(fit$beta), se = num(fit$se), ci_lb = num(fit$ci.lb),
    ci_ub = num(fit$ci.ub), pval = num(fit$pval), tau2 = num(fit$tau2),
    I2 = num(fit$I2), H2 = num(fit$H2), QE = num(fit$QE), QEp = num(fit$QEp),
    k = fit$k, method = fit$method, test = fit$test,
    pi_lb = num(pr$pi.lb), pi_ub = num(pr$pi.ub),
    weights = num(weights(fit)),
    stepadj = isTRUE(attr(fit, "stepadj"))
  )
  if (!full) return(out)
  ci <- if (fit$method %in% c("FE", "EE", "CE") || fit$k < 2) NULL else
    try(suppressWarnings(confint(fit, control = ci_ctrl)), silent = TRUE)
  if (is.null(ci) || inherits(ci, "try-error")) {
    out$tau2_ci_lb <- out$tau2_ci_ub <- out$I2_ci_lb <- out$I2_ci_ub <- NA_real_
    out$H2_ci_lb <- out$H2_ci_ub <- NA_real_
  } else {
    out$tau2_ci_lb <- num(ci$random["tau^2", "ci.lb"])
    out$tau2_ci_ub <- num(ci$random["tau^2", "ci.ub"])
    out$I2_ci_lb <- num(ci$random["I^2(%)", "ci.lb"])
    out$I2_ci_ub <- num(ci$random["I^2(%)", "ci.ub"])
    out$H2_ci_lb <- num(ci$random["H^2", "ci.lb"])
    out$H2_ci_ub <- num(ci$random["H^2", "ci.ub"])
  }
  fe <- suppressWarnings(rma(yi = fit$yi, vi = fit$vi, method = "FE", test = "z"))
  out$fe_beta <- num(fe$beta)
  out$fe_se <- num(fe$se)
  out$fe_ci_lb <- num(fe$ci.lb)
  out$fe_ci_ub <- num(fe$ci.ub)
  out
}

list_rma <- function(x) {
  tau2 <- if (is.null(x$tau2)) rep(0, length(x$estimate)) else x$tau2
  list(estimate = num(x$estimate), se = num(x$se), ci_lb = num(x$ci.lb),
       ci_ub = num(x$ci.ub), pval = num(if (is.null(x$pval)) x$pvals else x$pval),
       tau2 = num(tau2), I2 = num(x$I2), H2 = num(x$H2), Q = num(x$Q))
}

# ---------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------
datasets <- list()
add <- function(name, yi, vi, key = NULL, description = "") {
  yi <- as.numeric(yi); vi <- as.numeric(vi)
  if (is.null(key)) key <- seq_along(yi)
  datasets[[name]] <<- list(yi = yi, vi = vi, key = as.numeric(key),
                            description = description)
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
add("bcg_rr", bcg$yi, bcg$vi, key = bcg$year, "dat.bcg, log risk ratio; cumulative by year")

nsmd <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i,
               sd2i = sd2i, n2i = n2i, data = dat.normand1999)
add("normand_smd", nsmd$yi, nsmd$vi, key = -nsmd$vi, "dat.normand1999, SMD (Hedges g)")
nmd <- escalc(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i,
              sd2i = sd2i, n2i = n2i, data = dat.normand1999)
add("normand_md", nmd$yi, nmd$vi, description = "dat.normand1999, mean difference (large tau2)")

hs <- dat.hackshaw1998
add("hackshaw", hs$yi, hs$vi, key = hs$year, "dat.hackshaw1998, log odds ratio, k = 37")

mo <- escalc(measure = "ZCOR", ri = ri, ni = ni, data = dat.molloy2014)
add("molloy_zcor", mo$yi, mo$vi, key = mo$year, "dat.molloy2014, Fisher z")

pr <- escalc(measure = "PLO", xi = xi, ni = ni, data = dat.pritz1997)
add("pritz_plo", pr$yi, pr$vi, description = "dat.pritz1997, logit proportion")

add("k2", c(0.2, 0.9), c(0.04, 0.09), description = "k = 2, heterogeneous")
add("k2_homog", c(0.30, 0.31), c(0.05, 0.02), description = "k = 2, homogeneous")
add("k3", c(-0.1, 0.5, 1.3), c(0.05, 0.10, 0.08), description = "k = 3")
add("identical", c(0.4, 0.4, 0.4, 0.4), c(0.01, 0.04, 0.02, 0.09),
    description = "identical effects: tau2 = 0, Q = 0")
add("homogeneous", c(0.50, 0.52, 0.47, 0.51, 0.49, 0.53),
    c(0.04, 0.05, 0.03, 0.06, 0.05, 0.04),
    description = "homogeneous: untruncated DL tau2 < 0")
add("dominant", c(0.10, 0.80, -0.40, 0.60, 1.10),
    c(1e-4, 100, 50, 80, 100), description = "one dominant study, vi ratio 1e6")
add("vi_ratio_huge", c(0.05, 0.9, -0.7, 0.3, 1.8, -1.2, 0.4),
    c(1e-4, 1e-3, 0.02, 0.5, 3, 8, 10), description = "variance ratio 1e5")
add("large_tau2", c(-12, 3, 25, 8, -30, 15, 40, -5),
    c(1, 2, 1.5, 3, 2.5, 1, 2, 4), description = "tau2 > 100 (Q-profile search limit)")
add("k1", c(0.37), c(0.02), description = "k = 1")
add("reml_oscillates",
    c(0.9319, 0.8515, 0.552, 0.8657, 0.1678, 1.1369, -0.1762, 0.1297, 0.735,
      0.7179, 0.4313, 0.5922, -0.0453, 0.1724, -0.1334, 0.5468, 0.3821, 0.7454,
      0.7503, -0.8527, 0.6857, 0.3621),
    c(0.2408, 0.1148, 0.1426, 0.3545, 0.4841, 0.257, 0.4237, 0.1873, 0.135,
      0.3311, 0.1257, 0.0494, 0.2345, 0.0101, 0.2059, 0.3147, 0.1243, 0.0181,
      0.2633, 0.4355, 0.3547, 0.3834),
    description = "REML Fisher scoring oscillates; converges with stepadj = 0.5")
add("eb_oscillates", c(0.05, 0.9, 0.3, 1.8, -1.2, 0.4), c(1e-4, 1e-3, 0.5, 3, 8, 10),
    description = "EB Fisher scoring oscillates; converges with stepadj = 0.5")

# ---------------------------------------------------------------------------
# single-analysis cases: every data set x method x test
# ---------------------------------------------------------------------------
cases <- list()
for (dname in names(datasets)) {
  d <- datasets[[dname]]
  perm <- order(d$key)            # cumul() sorts by 'order' (a key)
  for (m in methods) {
    for (tn in names(tests)) {
      fit <- fit_rma(d$yi, d$vi, m, tests[[tn]])
      res <- summarise_fit(fit)
      if (length(d$yi) >= 3) {
        res$leave1out <- list_rma(leave1out(fit))
      }
      if (length(d$yi) >= 2) {
        res$cumul <- list_rma(cumul(fit, order = d$key))
      }
      cases[[length(cases) + 1]] <- list(
        name = dname, yi = d$yi, vi = d$vi, order = perm - 1L,
        method = m, ci = tn, level = 0.95, out = res)
    }
  }
}

# ---------------------------------------------------------------------------
# subgroup cases (separate rma per subgroup; RevMan test for differences)
# ---------------------------------------------------------------------------
subgroups <- list(
  bcg_alloc = list(yi = bcg$yi, vi = bcg$vi,
                   group = as.integer(factor(dat.bcg$alloc)) - 1L),
  hackshaw_design = list(yi = hs$yi, vi = hs$vi,
                         group = as.integer(factor(hs$design)) - 1L),
  molloy_design = list(yi = mo$yi, vi = mo$vi,
                       group = as.integer(factor(mo$design)) - 1L)
)
sg_cases <- list()
for (sname in names(subgroups)) {
  s <- subgroups[[sname]]
  for (m in c("REML", "DL", "PM", "FE")) {
    for (tn in names(tests)) {
      G <- max(s$group) + 1L
      per <- lapply(seq_len(G) - 1L, function(g) {
        fit <- fit_rma(s$yi[s$group == g], s$vi[s$group == g], m, tests[[tn]])
        summarise_fit(fit)
      })
      est <- sapply(per, `[[`, "beta")
      ses <- sapply(per, `[[`, "se")
      qb <- rma(yi = est, sei = ses, method = "FE")
      sg_cases[[length(sg_cases) + 1]] <- list(
        name = sname, yi = s$yi, vi = s$vi, group = s$group, method = m,
        ci = tn, level = 0.95, groups = per,
        Q_between = num(qb$QE), df_between = G - 1L, p_between = num(qb$QEp))
    }
  }
}

versions <- list(
  R = R.version.string,
  metafor = as.character(packageVersion("metafor")),
  metadat = as.character(packageVersion("metadat")),
  jsonlite = as.character(packageVersion("jsonlite")),
  platform = R.version$platform,
  session_packages = local({
    si <- sessionInfo()
    pk <- c(si$otherPkgs, si$loadedOnly)
    as.list(setNames(vapply(pk, function(p) p$Version, ""), names(pk)))[order(names(pk))]
  }),
  control = ctrl, confint_control = ci_ctrl,
  generated_by = "tests/reference/make_reference.R"
)

dir <- file.path("tests", "reference")
write_json(list(versions = versions, cases = cases, subgroup_cases = sg_cases),
           file.path(dir, "pooling.json"), digits = NA, auto_unbox = TRUE,
           na = "null", pretty = FALSE)

# ---------------------------------------------------------------------------
# small-study effects: regtest(model = "lm", predictor = "sei") and trimfill()
# ---------------------------------------------------------------------------
ss_data <- list(
  hackshaw = list(yi = hs$yi, vi = hs$vi),
  bcg_rr = list(yi = bcg$yi, vi = bcg$vi),
  molloy_zcor = list(yi = mo$yi, vi = mo$vi),
  normand_smd = list(yi = nsmd$yi, vi = nsmd$vi),
  pritz_plo = list(yi = pr$yi, vi = pr$vi),
  right_side = list(  # asymmetric with small studies to the left: fills on the right
    yi = c(0.50, 0.45, 0.55, 0.40, 0.30, 0.20, 0.10, 0.05, -0.10, -0.25, 0.42, -0.40),
    vi = c(0.005, 0.01, 0.012, 0.02, 0.04, 0.06, 0.08, 0.10, 0.15, 0.20, 0.03, 0.25))
)
eg <- list()
tf <- list()
for (dname in names(ss_data)) {
  d <- ss_data[[dname]]
  fit <- rma(yi = d$yi, vi = d$vi, method = "REML", control = ctrl)
  rt <- regtest(fit, model = "lm", predictor = "sei")
  cf <- coef(summary(rt$fit))
  eg[[length(eg) + 1]] <- list(
    name = dname, yi = d$yi, vi = d$vi,
    zval = num(rt$zval), pval = num(rt$pval), ddf = rt$ddf,
    est = num(rt$est), ci_lb = num(rt$ci.lb), ci_ub = num(rt$ci.ub),
    intercept = num(cf[1, 1]), intercept_se = num(cf[1, 2]),
    slope = num(cf[2, 1]), slope_se = num(cf[2, 2]))
  for (m in c("REML", "DL", "FE", "PM")) {
    for (est in c("L0", "R0")) {
      fit <- fit_rma(d$yi, d$vi, m, "z")
      tfr <- suppressWarnings(trimfill(fit, estimator = est, control = ctrl))
      filled <- if (is.null(tfr$fill)) rep(FALSE, tfr$k) else tfr$fill
      tf[[length(tf) + 1]] <- list(
        name = dname, yi = d$yi, vi = d$vi, method = m, estimator = est,
        k0 = tfr$k0, se_k0 = num(tfr$se.k0), side = tfr$side,
        p_k0 = num(tfr$p.k0),
        yi_filled = num(tfr$yi[filled]), vi_filled = num(tfr$vi[filled]),
        beta = num(tfr$beta), se = num(tfr$se), ci_lb = num(tfr$ci.lb),
        ci_ub = num(tfr$ci.ub), pval = num(tfr$pval), tau2 = num(tfr$tau2),
        I2 = num(tfr$I2), QE = num(tfr$QE), k = tfr$k)
    }
  }
}
write_json(list(versions = versions, egger = eg, trimfill = tf),
           file.path(dir, "small_study.json"), digits = NA, auto_unbox = TRUE,
           na = "null", pretty = FALSE)
cat("wrote", file.path(dir, "pooling.json"), "and", file.path(dir, "small_study.json"), "\n")

# ---------------------------------------------------------------------------
# meta-regression: rma(yi, vi, mods = ...) for every method and test, with
# QM, QE, R^2, confint() of tau^2 and predict(newmods); permutest() where the
# permutation distribution is exact (few permutations)
# ---------------------------------------------------------------------------
mr_models <- list(
  bcg_ablat = list(data = bcg, mods = ~ ablat, newmods = list(c(10), c(33.5), c(55))),
  bcg_year = list(data = bcg, mods = ~ year, newmods = list(c(1950), c(1980))),
  bcg_alloc = list(data = bcg, mods = ~ factor(alloc), newmods = list(c(0, 0), c(1, 0), c(0, 1))),
  bcg_ablat_year = list(data = bcg, mods = ~ ablat + year, newmods = list(c(20, 1960), c(45, 1975))),
  bcg_ablat_alloc = list(data = bcg, mods = ~ ablat + factor(alloc), newmods = list(c(30, 1, 0))),
  hackshaw_year = list(data = hs, mods = ~ year, newmods = list(c(1985))),
  molloy_meanage = list(data = mo, mods = ~ meanage, newmods = list(c(40), c(70)))
)
mr_cases <- list()
for (mname in names(mr_models)) {
  mm <- mr_models[[mname]]
  X <- model.matrix(mm$mods, data = mm$data)
  for (m in methods) {
    for (tn in names(tests)) {
      fit <- try(suppressWarnings(rma(yi, vi, mods = mm$mods, data = mm$data, method = m,
                                      test = tests[[tn]], control = ctrl)), silent = TRUE)
      if (inherits(fit, "try-error")) next
      ci <- if (m == "FE") NULL else try(suppressWarnings(confint(fit, control = ci_ctrl)), silent = TRUE)
      nm <- do.call(rbind, mm$newmods)
      pr <- predict(fit, newmods = nm)
      out <- list(
        beta = num(fit$beta), se = num(fit$se), zval = num(fit$zval), pval = num(fit$pval),
        ci_lb = num(fit$ci.lb), ci_ub = num(fit$ci.ub), tau2 = num(fit$tau2),
        QE = num(fit$QE), QEp = num(fit$QEp), QM = num(fit$QM), QMdf = num(fit$QMdf),
        QMp = num(fit$QMp), I2 = num(fit$I2), H2 = num(fit$H2), R2 = num(fit$R2),
        pred = num(pr$pred), pred_se = num(pr$se), pred_ci_lb = num(pr$ci.lb),
        pred_ci_ub = num(pr$ci.ub), pred_pi_lb = num(pr$pi.lb), pred_pi_ub = num(pr$pi.ub),
        weights = num(weights(fit)))
      if (!is.null(ci) && !inherits(ci, "try-error")) {
        out$tau2_ci_lb <- num(ci$random["tau^2", "ci.lb"])
        out$tau2_ci_ub <- num(ci$random["tau^2", "ci.ub"])
      }
      mr_cases[[length(mr_cases) + 1]] <- list(
        name = mname, yi = num(mm$data$yi), vi = num(mm$data$vi), X = unname(X),
        newmods = unname(nm), method = m, ci = tn, level = 0.95, out = out)
    }
  }
}

# exact permutation tests (metafor switches to the exact test when the number of
# distinct permutations is at most iter = 1000)
perm_sets <- list(
  bcg6_ablat = list(data = bcg[1:6, ], mods = ~ ablat),
  bcg8_int = list(data = bcg[1:8, ], mods = ~ 1),
  bcg9_alloc = list(data = bcg[c(1, 2, 3, 4, 5, 7, 8, 10, 13), ], mods = ~ factor(alloc))
)
perm_cases <- list()
for (pname in names(perm_sets)) {
  ps <- perm_sets[[pname]]
  X <- model.matrix(ps$mods, data = ps$data)
  for (m in c("REML", "DL", "FE")) {
    for (tn in c("wald", "hksj")) {
      fit <- suppressWarnings(rma(yi, vi, mods = ps$mods, data = ps$data, method = m,
                                  test = tests[[tn]], control = ctrl))
      pt <- suppressWarnings(permutest(fit, iter = 1000, progbar = FALSE, control = list(tol = 1e-12)))
      perm_cases[[length(perm_cases) + 1]] <- list(
        name = pname, yi = num(ps$data$yi), vi = num(ps$data$vi), X = unname(X), method = m, ci = tn,
        level = 0.95, exact_iter = pt$exact.iter, pval = num(pt$pval), QMp = num(pt$QMp))
    }
  }
}
write_json(list(versions = versions, cases = mr_cases, permutation = perm_cases),
           file.path(dir, "metareg.json"), digits = NA, auto_unbox = TRUE,
           na = "null", pretty = FALSE)

# ---------------------------------------------------------------------------
# Mantel-Haenszel (RR, OR, RD) and Peto, metafor defaults (add = 1/2 to "only0"
# with double-zero studies dropped for the Q test; no correction in the pooled
# estimate); data sets with single-zero and double-zero tables
# ---------------------------------------------------------------------------
tables <- list(
  bcg = with(dat.bcg, list(ai = tpos, n1i = tpos + tneg, ci = cpos, n2i = cpos + cneg)),
  nielweise2007 = with(dat.nielweise2007, list(ai = ai, n1i = n1i, ci = ci, n2i = n2i)),
  li2007 = with(dat.li2007, list(ai = ai, n1i = n1i, ci = ci, n2i = n2i)),
  sparse = list(ai = c(0, 1, 0, 2, 0), n1i = c(20, 25, 30, 40, 15),
                ci = c(0, 3, 2, 4, 1), n2i = c(22, 24, 28, 41, 15))
)
mh_cases <- list()
for (tname in names(tables)) {
  tb <- tables[[tname]]
  for (meas in c("RR", "OR", "RD", "PETO")) {
    fit <- if (meas == "PETO") {
      suppressWarnings(rma.peto(ai = tb$ai, n1i = tb$n1i, ci = tb$ci, n2i = tb$n2i))
    } else {
      suppressWarnings(rma.mh(ai = tb$ai, n1i = tb$n1i, ci = tb$ci, n2i = tb$n2i, measure = meas))
    }
    mh_cases[[length(mh_cases) + 1]] <- list(
      name = tname, measure = meas, ai = tb$ai, n1i = tb$n1i, ci = tb$ci, n2i = tb$n2i,
      level = 0.95, beta = num(fit$beta), se = num(fit$se), zval = num(fit$zval),
      pval = num(fit$pval), ci_lb = num(fit$ci.lb), ci_ub = num(fit$ci.ub),
      QE = num(fit$QE), QEp = num(fit$QEp), I2 = num(fit$I2), H2 = num(fit$H2),
      k = fit$k, k_yi = fit$k.yi, MH = num(fit$MH), MHp = num(fit$MHp),
      TA = num(fit$TA), TAp = num(fit$TAp))
  }
}
write_json(list(versions = versions, cases = mh_cases),
           file.path(dir, "mh_peto.json"), digits = NA, auto_unbox = TRUE,
           na = "null", pretty = FALSE)
cat("wrote", file.path(dir, "metareg.json"), "and", file.path(dir, "mh_peto.json"), "\n")
