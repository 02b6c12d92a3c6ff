# Generate reference effect sizes with metafor::escalc for tests/test_effect_sizes.py.
#
# Run by hand from the repository root:
#     Rscript tests/reference/make_effect_reference.R
# Writes tests/reference/effect_sizes.json.
#
# Every case records its inputs, the escalc() options used (only those that
# differ from escalc's defaults are passed), and escalc's yi and vi (NA -> null).
# For the 2x2-table measures, each case also records `adjusted`: whether
# escalc's result for a study differs from escalc(..., add = 0, to = "none"),
# i.e. whether escalc's continuity correction changed that study (studies that
# end up NA are reported as not adjusted).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

out_file <- file.path("tests", "reference", "effect_sizes.json")
if (!dir.exists(dirname(out_file))) {
  stop("Run this script from the repository root (tests/reference/ not found).")
}

cases <- list()

add_continuous_case <- function(name, measure, m1i, sd1i, n1i, m2i, sd2i, n2i,
                                description) {
  es <- escalc(measure = measure, m1i = m1i, sd1i = sd1i, n1i = n1i,
               m2i = m2i, sd2i = sd2i, n2i = n2i)
  cases[[length(cases) + 1]] <<- list(
    name = name,
    description = description,
    measure = measure,
    options = setNames(list(), character(0)),
    inputs = list(m1i = m1i, sd1i = sd1i, n1i = n1i,
                  m2i = m2i, sd2i = sd2i, n2i = n2i),
    yi = as.numeric(es$yi),
    vi = as.numeric(es$vi)
  )
}

same_value <- function(a, b) {
  (is.na(a) & is.na(b)) | (!is.na(a) & !is.na(b) & a == b)
}

add_binary_case <- function(name, measure, ai, n1i, ci, n2i, description,
                            options = list()) {
  args <- c(list(measure = measure, ai = ai, n1i = n1i, ci = ci, n2i = n2i),
            options)
  es <- suppressWarnings(do.call(escalc, args))
  # unadjusted counterpart, to record which studies escalc adjusted
  args0 <- args
  args0$add <- 0
  args0$to <- "none"
  es0 <- suppressWarnings(do.call(escalc, args0))
  yi <- as.numeric(es$yi)
  vi <- as.numeric(es$vi)
  changed <- !(same_value(yi, as.numeric(es0$yi)) &
               same_value(vi, as.numeric(es0$vi)))
  adjusted <- changed & !is.na(yi)
  if (length(options) == 0) options <- setNames(list(), character(0))
  cases[[length(cases) + 1]] <<- list(
    name = name,
    description = description,
    measure = measure,
    options = options,
    inputs = list(ai = ai, n1i = n1i, ci = ci, n2i = n2i),
    yi = yi,
    vi = vi,
    adjusted = adjusted
  )
}

# ---------------------------------------------------------------------------
# Continuous outcomes
# ---------------------------------------------------------------------------

d <- dat.normand1999
for (measure in c("MD", "SMD")) {
  add_continuous_case(paste0("normand1999_", measure), measure,
                      d$m1i, d$sd1i, d$n1i, d$m2i, d$sd2i, d$n2i,
                      "metadat::dat.normand1999 (length of hospital stay)")
}

# tiny n: n = 2 per arm (m = n1 + n2 - 2 = 2, the smallest m with a defined
# bias correction), plus one study with n1 + n2 = 3 (m = 1) for which escalc
# returns NA for SMD because the correction factor is undefined.
tiny <- list(m1i = c(10, 3.5, 1), sd1i = c(2, 1.5, 1), n1i = c(2, 2, 1),
             m2i = c(8, 4.25, 0), sd2i = c(3, 0.5, 1), n2i = c(2, 2, 2))
for (measure in c("MD", "SMD")) {
  add_continuous_case(paste0("tiny_n_", measure), measure,
                      tiny$m1i, tiny$sd1i, tiny$n1i,
                      tiny$m2i, tiny$sd2i, tiny$n2i,
                      "tiny groups: n = 2 per arm, and n1 = 1, n2 = 2 (SMD undefined)")
}

huge <- list(m1i = c(100.3, 5.01), sd1i = c(15, 2), n1i = c(1e6, 2500000),
             m2i = c(100, 5), sd2i = c(15.5, 2.2), n2i = c(1e6, 3000000))
for (measure in c("MD", "SMD")) {
  add_continuous_case(paste0("huge_n_", measure), measure,
                      huge$m1i, huge$sd1i, huge$n1i,
                      huge$m2i, huge$sd2i, huge$n2i,
                      "huge groups (n in the millions)")
}

eq <- list(m1i = c(12, -3.5, 0), sd1i = c(4, 1, 2), n1i = c(20, 35, 7),
           m2i = c(12, -3.5, 0), sd2i = c(5, 2, 2), n2i = c(25, 30, 9))
for (measure in c("MD", "SMD")) {
  add_continuous_case(paste0("equal_means_", measure), measure,
                      eq$m1i, eq$sd1i, eq$n1i, eq$m2i, eq$sd2i, eq$n2i,
                      "equal means in both arms (yi = 0)")
}

# ---------------------------------------------------------------------------
# 2x2 tables (ai events of n1i in group 1, ci events of n2i in group 2)
# ---------------------------------------------------------------------------

b <- dat.bcg
bcg <- list(ai = b$tpos, n1i = b$tpos + b$tneg,
            ci = b$cpos, n2i = b$cpos + b$cneg)

# zero events in one arm, all events in one arm, mixed with ordinary studies
zero1 <- list(ai = c(0, 7, 12, 5, 20),
              n1i = c(25, 40, 12, 30, 60),
              ci = c(4, 0, 6, 9, 15),
              n2i = c(24, 38, 15, 30, 58))

# double-zero studies (no events in either arm) next to ordinary studies
dz <- list(ai = c(0, 3, 0, 10),
           n1i = c(50, 40, 120, 100),
           ci = c(0, 5, 0, 12),
           n2i = c(50, 42, 80, 95))

# all events in both arms (bi = di = 0) next to an ordinary study
ae <- list(ai = c(30, 8, 15),
           n1i = c(30, 20, 15),
           ci = c(25, 11, 40),
           n2i = c(25, 20, 40))

tinyb <- list(ai = c(1, 0, 2, 1), n1i = c(2, 2, 2, 2),
              ci = c(1, 1, 0, 2), n2i = c(2, 2, 2, 2))

hugeb <- list(ai = c(1234, 50000, 3), n1i = c(1e6, 2e6, 1500000),
              ci = c(1500, 48000, 0), n2i = c(1e6, 2e6, 1400000))

binary_sets <- list(
  bcg = list(data = bcg, description = "metadat::dat.bcg (BCG vaccine trials)"),
  zero_one_arm = list(data = zero1,
                      description = "zero events, or all events, in one arm only"),
  double_zero = list(data = dz,
                     description = "studies with no events in either arm"),
  all_events = list(data = ae,
                    description = "studies with all events in both arms"),
  tiny_n = list(data = tinyb, description = "n = 2 per arm"),
  huge_n = list(data = hugeb, description = "n in the millions")
)

for (set_name in names(binary_sets)) {
  s <- binary_sets[[set_name]]
  for (measure in c("RR", "OR", "RD")) {
    add_binary_case(paste0(set_name, "_", measure), measure,
                    s$data$ai, s$data$n1i, s$data$ci, s$data$n2i,
                    s$description)
  }
}

# Non-default options, to check the option handling of the Python port
option_sets <- list(
  drop00 = list(drop00 = TRUE),
  to_all = list(to = "all"),
  to_if0all = list(to = "if0all"),
  add_one = list(add = 1)
)
for (set_name in c("double_zero", "all_events", "zero_one_arm")) {
  s <- binary_sets[[set_name]]
  for (opt_name in names(option_sets)) {
    for (measure in c("RR", "OR", "RD")) {
      add_binary_case(paste0(set_name, "_", measure, "_", opt_name), measure,
                      s$data$ai, s$data$n1i, s$data$ci, s$data$n2i,
                      paste0(s$description, "; escalc options: ", opt_name),
                      options = option_sets[[opt_name]])
    }
  }
}
# to = "if0all" on a set with no zero cells must leave everything unadjusted;
# to = "none" on a set with zero cells gives NA (Inf recoded) for some studies
add_binary_case("bcg_OR_to_if0all", "OR", bcg$ai, bcg$n1i, bcg$ci, bcg$n2i,
                "dat.bcg with to = 'if0all' (no zero cells: nothing added)",
                options = list(to = "if0all"))
for (measure in c("RR", "OR", "RD")) {
  add_binary_case(paste0("zero_one_arm_", measure, "_to_none"), measure,
                  zero1$ai, zero1$n1i, zero1$ci, zero1$n2i,
                  "zero cells with to = 'none' (no continuity correction)",
                  options = list(to = "none"))
}

ref <- list(
  generated_by = "tests/reference/make_effect_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  # read from the installed escalc's formals, not typed in by hand
  escalc_defaults = lapply(formals(metafor::escalc)[c("add", "to", "drop00", "vtype")],
                           eval),
  cases = cases
)

writeLines(toJSON(ref, digits = NA, na = "null", auto_unbox = TRUE,
                  pretty = TRUE),
           out_file)
cat("wrote", out_file, "with", length(cases), "cases\n")
