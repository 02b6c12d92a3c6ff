# Independent quadrature for the Bayesian normal-normal random-effects model, shared by
# tests/reference/make_bayes_reference.R and tests/shipped/make_shipped_bayes_reference.R.
#
# y_i ~ N(mu, v_i + tau^2) with a prior on tau and a flat or normal prior on mu. Conditional on tau,
# mu is normal with closed-form moments; every posterior summary is a one-dimensional integral over
# tau, computed with R's adaptive QUADPACK integrate() over log(tau) on the whole real line
# (rel.tol 1e-12), quantiles by uniroot() (tol 1e-13). This shares no code and no grid with
# tpsynth.bayes (Gauss-Legendre panels with an exact treatment of tau near 0).

RTOL <- 1e-12

# --- tau priors as densities of u = log(tau) -------------------------------------------------
# (log densities; -Inf outside the support or where exp(u) overflows)
prior_u <- function(family, p) {
  switch(family,
    half_normal = function(u) log(2) + dnorm(exp(u), 0, p[1], log = TRUE) + u,
    half_cauchy = function(u) log(2) + dcauchy(exp(u), 0, p[1], log = TRUE) + u,
    lognormal_tau2 = function(u) dnorm(2 * u, p[1], p[2], log = TRUE) + log(2),
    log_t_tau2 = function(u) dt((2 * u - p[1]) / p[2], df = p[3], log = TRUE) - log(p[2]) + log(2),
    uniform = function(u) if (exp(u) <= p[1]) u - log(p[1]) else -Inf)
}

cond <- function(y, v, tau, mu_prior) {
  # conditional posterior mean/variance of mu and log marginal likelihood, for one tau
  var <- v + tau^2
  w <- 1 / var
  sw <- sum(w); swy <- sum(w * y)
  if (!is.null(mu_prior)) { sw <- sw + 1 / mu_prior[2]^2; swy <- swy + mu_prior[1] / mu_prior[2]^2 }
  m <- swy / sw
  q <- sum(w * (y - m)^2)
  if (!is.null(mu_prior)) q <- q + (mu_prior[1] - m)^2 / mu_prior[2]^2
  c(m = m, s2 = 1 / sw, ll = -0.5 * (sum(log(var)) + log(sw) + q))
}

analyse <- function(y, v, family, p, mu_prior = NULL, mid = NULL) {
  pr <- prior_u(family, p)
  upper_u <- if (family == "uniform") log(p[1]) else Inf
  # log-likelihood offset so that exp() stays in range
  uu <- seq(log(1e-4 * sqrt(min(v))), log(100 * sqrt(max(v)) + 10 * diff(range(y))), length.out = 200)
  logpost <- sapply(uu, function(u) cond(y, v, exp(u), mu_prior)["ll"] + pr(u))
  off <- max(logpost)
  g <- function(u, f) sapply(u, function(ui) {
    if (!is.finite(ui) || !is.finite(exp(2 * ui))) return(0)
    lp <- pr(ui)
    if (!is.finite(lp)) return(0)
    cc <- cond(y, v, exp(ui), mu_prior)
    if (!is.finite(cc["ll"])) return(0)
    exp(cc["ll"] + lp - off) * f(ui, cc)
  })
  # split at the posterior's bulk to help the adaptive rule
  umode <- uu[which.max(logpost)]
  integ <- function(f, lo = -Inf, hi = upper_u) {
    pieces <- sort(unique(c(lo, if (umode > lo && umode < hi) umode, hi)))
    s <- 0
    for (j in seq_len(length(pieces) - 1))
      s <- s + integrate(function(u) g(u, f), pieces[j], pieces[j + 1], rel.tol = RTOL,
                         abs.tol = 0, subdivisions = 5000L)$value
    s
  }
  Z <- integ(function(u, cc) 1)
  mix <- function(kind) switch(kind,
    mu = function(cc, u) c(cc["m"], sqrt(cc["s2"])),
    pred = function(cc, u) c(cc["m"], sqrt(cc["s2"] + exp(2 * u))))
  cdf <- function(x, kind) integ(function(u, cc) { ms <- mix(kind)(cc, u); pnorm((x - ms[1]) / ms[2]) }) / Z
  pdf <- function(x, kind) integ(function(u, cc) { ms <- mix(kind)(cc, u); dnorm((x - ms[1]) / ms[2]) / ms[2] }) / Z
  mean_mu <- integ(function(u, cc) cc["m"]) / Z
  m2 <- integ(function(u, cc) cc["s2"] + cc["m"]^2) / Z
  sd_mu <- sqrt(m2 - mean_mu^2)
  span <- 20 * sqrt(max(v)) + 20 * diff(range(y)) + 20 * (if (family == "uniform") p[1] else 1)
  qfun <- function(q, kind) uniroot(function(x) cdf(x, kind) - q, c(mean_mu - span, mean_mu + span), extendInt = "upX",
                                    tol = 1e-13, maxiter = 1000)$root
  tau_cdf <- function(t) integ(function(u, cc) 1, hi = min(log(t), upper_u)) / Z
  tau_q <- function(q) exp(uniroot(function(lu) tau_cdf(exp(lu)) - q,
                                   c(log(1e-8 * sqrt(min(v))), min(log(1e6 * sqrt(max(v))), upper_u)),
                                   tol = 1e-13, maxiter = 1000)$root)
  shortest <- function(kind) {
    h <- function(pl) pdf(qfun(pl, kind), kind) - pdf(qfun(pl + 0.95, kind), kind)
    pl <- uniroot(h, c(1e-6, 0.05 - 1e-6), tol = 1e-13, maxiter = 1000)$root
    c(qfun(pl, kind), qfun(pl + 0.95, kind))
  }
  hdi <- shortest("mu")
  out <- list(
    estimate = qfun(0.5, "mu"), mean = mean_mu, sd = sd_mu,
    ci_low = qfun(0.025, "mu"), ci_high = qfun(0.975, "mu"), hdi_low = hdi[1], hdi_high = hdi[2],
    pi_low = qfun(0.025, "pred"), pi_high = qfun(0.975, "pred"),
    tau_median = tau_q(0.5), tau_ci_low = tau_q(0.025), tau_ci_high = tau_q(0.975),
    p_below_0 = cdf(0, "mu"))
  if (!is.null(mid)) {
    out$p_below_minus_mid <- cdf(-mid, "mu")
    out$p_below_mid <- cdf(mid, "mu")
  }
  out
}


# A prior written in the config's syntax, e.g. "half_normal(0.5)" -> list(family, params)
parse_prior <- function(text) {
  m <- regmatches(text, regexec("^([a-z_0-9]+)\\((.*)\\)$", text))[[1]]
  list(family = m[2], params = as.numeric(strsplit(m[3], ",")[[1]]))
}
