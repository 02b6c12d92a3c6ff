# metafor's answers for the network meta-analyses of data/raw/ with config/config.yaml
# (tests/shipped/test_shipped_network.py).
#
# Not a code test: it checks whatever data and config the repository holds. `make reference` runs the
# pipeline up to results/networks/*.json, then this script from the repository root (needs R with metafor
# and jsonlite), then the comparison:
#     Rscript tests/shipped/make_shipped_network_reference.R
# Writes tests/shipped/network.json. Per study, yi and V are recomputed here from the arm statistics the
# pipeline used (on the analysis scale; escalc() for SMD with the Gleser & Olkin 2009 covariance
# 1/n_1 + g_j g_l / (2N); log odds / log risks per arm with 0.5 added to every arm of a study with a zero
# cell); reported contrasts enter as given. Per connected part, rma.mv(yi, V, mods = ~ 0 + X,
# random = ~ comp | study, rho = 1/2) with the network's method (REML/ML: tau^2 maximising metafor's own
# log-likelihood, as tests/reference/make_network_reference.R; DL: the generalised DL formula) and
# predict() for every ordered pair.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

num <- function(x) { if (is.null(x)) return(NA_real_); x <- as.numeric(x); x[!is.finite(x)] <- NA_real_; x }

study_block <- function(s, measure) {
  nodes <- unlist(s$nodes)
  if (!is.null(s$contrast)) {
    return(list(y = s$contrast$estimate, V = matrix(s$contrast$variance), nodes = nodes))
  }
  a <- s$arms
  n <- sapply(nodes, function(nd) a[[nd]]$n)
  m <- length(nodes)
  if (measure == "MD") {
    mean <- sapply(nodes, function(nd) a[[nd]]$mean)
    v <- sapply(nodes, function(nd) a[[nd]]$sd)^2 / n
    y <- mean[-1] - mean[1]
    V <- matrix(v[1], m - 1, m - 1); diag(V) <- v[-1] + v[1]
  } else if (measure == "SMD") {
    mean <- sapply(nodes, function(nd) a[[nd]]$mean)
    sd <- sapply(nodes, function(nd) a[[nd]]$sd)
    es <- escalc(measure = "SMD", m1i = mean[-1], sd1i = sd[-1], n1i = n[-1],
                 m2i = rep(mean[1], m - 1), sd2i = rep(sd[1], m - 1), n2i = rep(n[1], m - 1))
    y <- as.numeric(es$yi)
    V <- 1 / n[1] + outer(y, y) / (2 * sum(n))
    diag(V) <- as.numeric(es$vi)
  } else {
    ev <- sapply(nodes, function(nd) a[[nd]]$events)
    add <- if (any(ev == 0 | ev == n)) 0.5 else 0
    if (measure == "OR") { est <- log((ev + add) / (n - ev + add)); v <- 1 / (ev + add) + 1 / (n - ev + add) }
    else { est <- log((ev + add) / (n + 2 * add)); v <- 1 / (ev + add) - 1 / (n + 2 * add) }
    y <- est[-1] - est[1]
    V <- matrix(v[1], m - 1, m - 1); diag(V) <- v[-1] + v[1]
  }
  list(y = as.numeric(y), V = as.matrix(V), nodes = nodes)
}

fit_part <- function(studies, trts, ref, method, measure) {
  rows <- list(); Vs <- list()
  for (s in studies) {
    b <- study_block(s, measure)
    for (j in 2:length(b$nodes))
      rows[[length(rows) + 1]] <- data.frame(study = s$study_id, t1 = b$nodes[1], t2 = b$nodes[j],
                                             yi = b$y[j - 1], comp = paste(b$nodes[j], b$nodes[1]))
    Vs[[length(Vs) + 1]] <- b$V
  }
  dat <- do.call(rbind, rows)
  V <- bldiag(Vs)
  cols <- setdiff(trts, ref)
  X <- matrix(0, nrow(dat), length(cols), dimnames = list(NULL, cols))
  for (i in seq_len(nrow(dat))) {
    if (dat$t2[i] != ref) X[i, dat$t2[i]] <- 1
    if (dat$t1[i] != ref) X[i, dat$t1[i]] <- -1
  }
  M <- outer(dat$study, dat$study, "==") * 0.5; diag(M) <- 1
  fe <- rma.mv(dat$yi, V, mods = ~ 0 + X, method = "FE")
  df <- nrow(dat) - ncol(X)
  if (method == "FE" || df == 0) {
    tau2 <- if (method == "FE") 0 else NA
    fit <- fe
  } else {
    if (method == "DL") {
      W <- solve(V)
      P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
      tau2 <- max(0, (fe$QE - df) / sum(diag(P %*% M)))
    } else {
      ll <- function(t) as.numeric(logLik(rma.mv(dat$yi, V, mods = ~ 0 + X, random = ~ comp | study,
                                                   rho = 1 / 2, tau2 = t, method = method, data = dat)))
      start <- rma.mv(dat$yi, V, mods = ~ 0 + X, random = ~ comp | study, rho = 1 / 2, method = method,
                      data = dat)$tau2
      o <- optimize(ll, c(0, max(1, 10 * start)), maximum = TRUE, tol = 1e-13)
      tau2 <- if (ll(0) >= o$objective) 0 else o$maximum
    }
    fit <- rma.mv(dat$yi, V, mods = ~ 0 + X, random = ~ comp | study, rho = 1 / 2, tau2 = tau2,
                  method = "REML", data = dat)
  }
  pairs <- list()
  for (a in trts) for (b in trts) {
    if (a == b) next
    L <- setNames(numeric(length(trts)), trts); L[a] <- 1; L[b] <- L[b] - 1
    pr <- predict(fit, newmods = rbind(L[cols]))
    pairs[[length(pairs) + 1]] <- list(treatment = a, comparator = b, estimate = num(pr$pred), se = num(pr$se),
                                       ci_low = num(pr$ci.lb), ci_high = num(pr$ci.ub))
  }
  list(treatments = trts, tau2 = num(tau2), q = num(fe$QE), q_df = df, pairs = pairs)
}

out <- list(R_version = R.version.string, metafor_version = as.character(packageVersion("metafor")),
            networks = list())
for (f in sort(Sys.glob("results/networks/*.json"))) {
  r <- fromJSON(f, simplifyVector = FALSE)
  parts <- list()
  for (p in r$parts) {
    trts <- unlist(p$treatments)
    sts <- Filter(function(s) s$part == p$part, r$studies)
    parts[[length(parts) + 1]] <- fit_part(sts, trts, p$reference, r$method, r$measure)
  }
  out$networks[[r$network_id]] <- list(method = r$method, measure = r$measure, parts = parts)
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null"), "tests/shipped/network.json")
cat("wrote tests/shipped/network.json\n")
