# The flexmix side of benchmarks/flexmix_agreement.py, which writes the data
# and reads the results back; not meant to be run by hand.
#
#   Rscript benchmarks/flexmix_agreement.R DIR NREP REPEATS
#
# For every data set DIR/<name>.csv (poisson, binomial, gaussian) it fits a
# 2-component flexmix model, the best of NREP random starts (stepFlexmix),
# REPEATS times (same seed: the same fits, timed; the fastest is kept), at
# a tight tolerance and at flexmix's default one, then refit() (BFGS from
# the EM estimates with optim's numerical Hessian: the standard errors).
# It writes DIR/<name>_coef.csv (every parameter of the refit, its standard
# error, and the EM estimate it started from) and DIR/<name>_info.csv.

suppressPackageStartupMessages(library(flexmix))

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
nrep <- as.integer(args[2])
repeats <- as.integer(args[3])

models <- list(
  poisson = list(
    formula = y ~ x1,
    model = function() FLXMRglm(family = "poisson"),
    concomitant = function() FLXPmultinom(~x2)
  ),
  binomial = list(
    formula = cbind(succ, fail) ~ x1,
    model = function() FLXMRglm(family = "binomial"),
    concomitant = function() FLXPmultinom(~x2)
  ),
  gaussian = list(
    formula = y ~ x1,
    model = function() FLXMRglm(family = "gaussian"),
    concomitant = function() FLXPconstant()
  )
)

best_of <- function(spec, data, control) {
  set.seed(1)
  stepFlexmix(
    spec$formula, data = data, k = 2, nrep = nrep, model = spec$model(),
    concomitant = spec$concomitant(), control = control, verbose = FALSE
  )
}

timed <- function(expr_fun) {
  best <- Inf
  value <- NULL
  for (r in seq_len(repeats)) {
    seconds <- system.time(value <- expr_fun())[["elapsed"]]
    best <- min(best, seconds)
  }
  list(value = value, seconds = best)
}

for (name in names(models)) {
  spec <- models[[name]]
  data <- read.csv(file.path(dir, paste0(name, ".csv")))
  tight <- timed(function() {
    best_of(spec, data, list(tolerance = 1e-10, iter.max = 5000))
  })
  default <- timed(function() best_of(spec, data, list()))
  fit <- tight$value
  refitted <- timed(function() refit(fit))
  rf <- refitted$value
  # summary(refit(fit)) prints these same tables, per component and for the
  # concomitant model; rf@coef and rf@vcov hold every parameter at once.
  em <- FLXgetParameters(fit)
  coef <- data.frame(
    parameter = names(rf@coef),
    estimate = unname(rf@coef),
    std_error = sqrt(diag(rf@vcov)),
    em_estimate = unname(em[names(rf@coef)])
  )
  write.csv(coef, file.path(dir, paste0(name, "_coef.csv")), row.names = FALSE)
  info <- data.frame(
    k = fit@k,
    loglik = as.numeric(logLik(fit)),
    loglik_refit = FLXlogLikfun(fit)(rf@coef),
    iterations = fit@iter,
    converged = fit@converged,
    seconds = tight$seconds,
    default_loglik = as.numeric(logLik(default$value)),
    default_seconds = default$seconds,
    refit_seconds = refitted$seconds,
    flexmix = as.character(packageVersion("flexmix")),
    r = R.version.string
  )
  write.csv(info, file.path(dir, paste0(name, "_info.csv")), row.names = FALSE)
}
