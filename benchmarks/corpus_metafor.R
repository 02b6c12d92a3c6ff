# metafor's side of benchmarks/corpus.py: fit the same corpus analyses in one R process.
#
#   Rscript benchmarks/corpus_metafor.R --corpus=PATH --analyses=KEYS.csv --out=OUT.csv [--mode=time|agree]
#
# KEYS.csv: review, analysis_group, analysis_number, measure (SMD or logRR), as tpsynth pooled them.
# The rows of each analysis are selected with the same rules as tpsynth.corpus (SMD: both arms with
# mean, SD > 0, n > 1; log RR: 0 <= events <= n, n > 0) and each analysis is fitted with
#   escalc(measure = "SMD") or escalc(measure = "RR", drop00 = TRUE)   (add = 1/2, to = "only0")
#   rma(yi, vi, method = "REML", test = "knha") + predict()
# mode=time uses metafor's default control (what a user would run) and reports the time of the loop;
# mode=agree uses tight control (threshold = 1e-12, tol = 1e-12, maxiter = 10000) in rma() and
# confint() and adds confint() (Q-profile CI of I^2) and regtest(model = "lm") (k >= 10).
# A fit that fails (REML did not converge) is written with status "error: ..." and counted.

args <- commandArgs(trailingOnly = TRUE)
opt <- list(mode = "time")
for (a in args) {
  kv <- regmatches(a, regexpr("=", a), invert = TRUE)[[1]]
  opt[[sub("^--", "", kv[1])]] <- kv[2]
}
for (req in c("corpus", "analyses", "out")) {
  if (is.null(opt[[req]])) stop("missing --", req, "=...")
}
suppressPackageStartupMessages(library(metafor))
t_start <- proc.time()[["elapsed"]]

num <- c("exp_mean", "exp_sd", "exp_cases", "exp_n", "ctl_mean", "ctl_sd", "ctl_cases", "ctl_n")
d <- read.csv(gzfile(opt$corpus), stringsAsFactors = FALSE)[, c("review", "analysis_group", "analysis_number", num)]
keys <- read.csv(opt$analyses, stringsAsFactors = FALSE, colClasses = c("character", "integer", "integer", "character"))
id <- paste(d$review, d$analysis_group, d$analysis_number, sep = "|")
kid <- paste(keys$review, keys$analysis_group, keys$analysis_number, sep = "|")
rows_of <- split(seq_len(nrow(d)), factor(id, levels = unique(id)))[kid]
t_read <- proc.time()[["elapsed"]] - t_start

agree <- identical(opt$mode, "agree")
ctrl <- if (agree) list(threshold = 1e-12, tol = 1e-12, maxiter = 10000) else list()
n <- length(kid)
res <- matrix(NA_real_, n, 12, dimnames = list(NULL, c(
  "k", "estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "i2", "i2_ci_low", "i2_ci_high", "egger_pvalue"
)))
status <- rep("ok", n)

t0 <- proc.time()[["elapsed"]]
for (j in seq_len(n)) {
  x <- d[rows_of[[j]], ]
  if (keys$measure[j] == "SMD") {
    ok <- with(x, !is.na(exp_mean) & !is.na(ctl_mean) & !is.na(exp_sd) & !is.na(ctl_sd) &
      exp_sd > 0 & ctl_sd > 0 & !is.na(exp_n) & !is.na(ctl_n) & exp_n > 1 & ctl_n > 1)
    x <- x[ok, ]
    e <- escalc(measure = "SMD", m1i = exp_mean, sd1i = exp_sd, n1i = exp_n,
                m2i = ctl_mean, sd2i = ctl_sd, n2i = ctl_n, data = x)
  } else {
    ok <- with(x, !is.na(exp_cases) & !is.na(ctl_cases) & !is.na(exp_n) & !is.na(ctl_n) &
      exp_cases >= 0 & ctl_cases >= 0 & exp_cases <= exp_n & ctl_cases <= ctl_n & exp_n > 0 & ctl_n > 0)
    x <- x[ok, ]
    e <- escalc(measure = "RR", ai = exp_cases, n1i = exp_n, ci = ctl_cases, n2i = ctl_n, drop00 = TRUE, data = x)
  }
  e <- e[!is.na(e$yi) & !is.na(e$vi), ]
  fit <- tryCatch(
    suppressWarnings(rma(yi, vi, data = e, method = "REML", test = "knha", control = ctrl)),
    error = function(err) err
  )
  if (inherits(fit, "error")) {
    status[j] <- paste("error:", gsub("[\r\n,]", " ", conditionMessage(fit)))
    next
  }
  p <- predict(fit)
  pi_lb <- if (is.null(p$pi.lb)) p$ci.lb else p$pi.lb
  pi_ub <- if (is.null(p$pi.ub)) p$ci.ub else p$pi.ub
  res[j, 1:9] <- c(fit$k, fit$b[1], fit$se, fit$ci.lb, fit$ci.ub, pi_lb, pi_ub, fit$tau2, fit$I2)
  if (agree) {
    if (fit$k > 1) {
      ci <- tryCatch(suppressWarnings(confint(fit, control = ctrl)), error = function(err) NULL)
      if (!is.null(ci)) res[j, 10:11] <- ci$random["I^2(%)", c("ci.lb", "ci.ub")]
    }
    if (fit$k >= 10) {
      eg <- tryCatch(regtest(fit, model = "lm"), error = function(err) NULL)
      if (!is.null(eg)) res[j, 12] <- eg$pval
    }
  }
}
t_fit <- proc.time()[["elapsed"]] - t0

fmt <- function(v) ifelse(is.na(v), "", sprintf("%.17g", v))
out <- data.frame(keys[, 1:4], lapply(as.data.frame(res), fmt), status = status, check.names = FALSE)
write.csv(out, opt$out, row.names = FALSE, quote = TRUE)
cat(sprintf("R %s, metafor %s: %d analyses; read %.2f s, fits %.2f s (%.2f ms per analysis), total %.2f s; %d failed\n",
            getRversion(), packageVersion("metafor"), n, t_read, t_fit, 1000 * t_fit / max(n, 1),
            proc.time()[["elapsed"]] - t_start, sum(status != "ok")))
