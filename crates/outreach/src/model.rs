//! The support-need model: a discrete-time hazard model of "contacts support on topic T within
//! 14 days" (logistic regression on user-topic-cutoff snapshots) fitted by penalised Newton/IRLS,
//! Platt-calibrated, explained per prediction, and measured. Pure: no I/O, no clock.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// How [`Model::fit`] fits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    /// L2 penalty on the standardised coefficients (never the intercept), applied to the
    /// summed log-likelihood as in scikit-learn's `C = 1 / l2`: its pull fades as rows grow.
    pub l2: f64,
    /// Newton iterations before giving up with [`ModelError::NotConverged`].
    pub max_iterations: usize,
    /// Stop once the penalised log-likelihood changes by less than this, relative to its size.
    pub tolerance: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            l2: 1.0,
            max_iterations: 50,
            tolerance: 1e-8,
        }
    }
}

/// Examples to fit or calibrate on: one row of raw (unstandardised) features per example.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: DMatrix<f64>,
    pub y: Vec<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no training examples")]
    EmptyDataset,
    #[error("{what}: expected {expected}, found {found}")]
    DimensionMismatch {
        what: String,
        expected: usize,
        found: usize,
    },
    #[error("{dataset} row {row}: {feature} = {value} is not a finite number")]
    NonFinite {
        dataset: &'static str,
        row: usize,
        feature: String,
        value: f64,
    },
    #[error("no positive examples in the training data; a single-class set cannot be fitted")]
    NoPositives,
    #[error("no negative examples in the training data; a single-class set cannot be fitted")]
    NoNegatives,
    #[error("invalid training option: {0}")]
    InvalidOptions(String),
    #[error("Newton's method did not converge in {iterations} iterations")]
    NotConverged { iterations: usize },
    #[error(
        "the information matrix is singular at iteration {iteration} even with jitter; \
         drop collinear features or raise l2"
    )]
    Singular { iteration: usize },
    #[error("stored model is inconsistent: {0}")]
    Corrupt(String),
}

/// Platt scaling: calibrated probability = σ(slope · raw logit + intercept).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub slope: f64,
    pub intercept: f64,
}

impl Calibration {
    /// Used when there is nothing to calibrate on: trust the raw logit.
    pub const IDENTITY: Calibration = Calibration {
        slope: 1.0,
        intercept: 0.0,
    };

    /// The calibrated logit.
    pub fn apply(&self, raw_logit: f64) -> f64 {
        self.slope * raw_logit + self.intercept
    }
}

/// A fitted model. The public fields are its stored form; [`Model::fit`] and deserialisation
/// derive the raw-unit scoring weights from them once, so edit a model by refitting, not by
/// assigning to the fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "StoredModel")]
pub struct Model {
    pub feature_names: Vec<String>,
    /// Standardisation learned on the training rows: z = (x − mean) / scale.
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    /// The linear predictor on standardised features.
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    /// Fitted on a held-out calibration slice.
    pub calibration: Calibration,
    /// The same linear predictor in raw feature units, so scoring is one dot product with no
    /// allocation: weight = coefficient / scale, intercept absorbs the means.
    #[serde(skip)]
    raw: RawScale,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RawScale {
    intercept: f64,
    weights: Vec<f64>,
}

/// One feature's push on a prediction, relative to an average training row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contribution {
    /// Index into the model's features.
    pub feature: usize,
    pub name: String,
    /// The raw feature value.
    pub value: f64,
    /// What the feature added to the (uncalibrated) logit: coefficient × standardised value.
    pub logit: f64,
}

/// Platt's penalty: only there to keep the 2-parameter fit finite on separable slices.
const CALIBRATION_L2: f64 = 1e-6;
/// Step-halvings before concluding that no step along the Newton direction improves.
const MAX_HALVINGS: usize = 40;

impl Model {
    /// Fits on `train` (standardised, L2-penalised Newton/IRLS), then Platt-calibrates on
    /// `calibrate`. An empty or single-class calibration slice, or a Platt fit that does not
    /// give a finite increasing map, leaves the calibration at [`Calibration::IDENTITY`].
    pub fn fit(
        names: Vec<String>,
        train: &Dataset,
        calibrate: &Dataset,
        opts: &TrainOptions,
    ) -> Result<Model, ModelError> {
        check_options(opts)?;
        check_dataset("training", train, &names)?;
        check_dataset("calibration", calibrate, &names)?;
        if train.y.is_empty() {
            return Err(ModelError::EmptyDataset);
        }
        let positives = train.y.iter().filter(|&&y| y).count();
        if positives == 0 {
            return Err(ModelError::NoPositives);
        }
        if positives == train.y.len() {
            return Err(ModelError::NoNegatives);
        }

        let standardiser = Standardiser::learn(&train.x);
        let design = Design::standardised(&train.x, &standardiser);
        // Start at the base rate with no slopes: the null model, one Newton step from most fits.
        let mut start = DVector::zeros(design.width);
        start[0] = logit(positives as f64 / train.y.len() as f64);
        let beta = newton(&design, &train.y, opts.l2, start, opts)?;

        let mut model = Model::assemble(
            names,
            standardiser.means,
            standardiser.scales,
            beta[0],
            beta.as_slice()[1..].to_vec(),
            Calibration::IDENTITY,
        );
        model.calibration = model.platt(calibrate, opts);
        Ok(model)
    }

    /// The linear predictor before calibration.
    ///
    /// # Panics
    /// If `features` does not have one value per model feature (see [`Model::check_features`]).
    pub fn raw_logit(&self, features: &[f64]) -> f64 {
        assert_eq!(
            features.len(),
            self.raw.weights.len(),
            "feature vector length differs from the model's feature count"
        );
        self.raw.intercept + dot(&self.raw.weights, features)
    }

    /// The calibrated probability of a support contact within the horizon.
    pub fn probability(&self, features: &[f64]) -> f64 {
        sigmoid(self.calibration.apply(self.raw_logit(features)))
    }

    /// The `top` features that raised this score the most above an average training row,
    /// largest first; features that lowered it are left out.
    pub fn explain(&self, features: &[f64], top: usize) -> Vec<Contribution> {
        assert_eq!(
            features.len(),
            self.coefficients.len(),
            "feature vector length differs from the model's feature count"
        );
        let mut pushes: Vec<Contribution> = features
            .iter()
            .enumerate()
            .map(|(j, &value)| Contribution {
                feature: j,
                name: self.feature_names[j].clone(),
                value,
                logit: self.coefficients[j] * (value - self.means[j]) / self.scales[j],
            })
            .filter(|c| c.logit > 0.0)
            .collect();
        pushes.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.feature.cmp(&b.feature)));
        pushes.truncate(top);
        pushes
    }

    /// Intercept and coefficients per unit of each raw feature.
    pub fn coefficients_raw_scale(&self) -> (f64, Vec<f64>) {
        (self.raw.intercept, self.raw.weights.clone())
    }

    /// Whether feature vectors laid out as `names` fit this model, e.g. a stored model after the
    /// feature set changed. Scoring a mismatched vector would panic or mean nothing.
    pub fn check_features(&self, names: &[&str]) -> Result<(), ModelError> {
        if names.len() != self.feature_names.len() {
            return Err(ModelError::DimensionMismatch {
                what: "features".into(),
                expected: self.feature_names.len(),
                found: names.len(),
            });
        }
        match self
            .feature_names
            .iter()
            .zip(names)
            .position(|(a, b)| a != b)
        {
            Some(j) => Err(ModelError::Corrupt(format!(
                "feature {j} is {:?} in the model but {:?} in the data",
                self.feature_names[j], names[j]
            ))),
            None => Ok(()),
        }
    }

    fn assemble(
        feature_names: Vec<String>,
        means: Vec<f64>,
        scales: Vec<f64>,
        intercept: f64,
        coefficients: Vec<f64>,
        calibration: Calibration,
    ) -> Model {
        let weights: Vec<f64> = coefficients
            .iter()
            .zip(&scales)
            .map(|(c, s)| c / s)
            .collect();
        let raw = RawScale {
            intercept: intercept - dot(&weights, &means),
            weights,
        };
        Model {
            feature_names,
            means,
            scales,
            intercept,
            coefficients,
            calibration,
            raw,
        }
    }

    /// Platt scaling: a 1-D logistic regression of the calibration labels on the raw logits.
    fn platt(&self, calibrate: &Dataset, opts: &TrainOptions) -> Calibration {
        let positives = calibrate.y.iter().filter(|&&y| y).count();
        if positives == 0 || positives == calibrate.y.len() {
            return Calibration::IDENTITY;
        }
        // Column-major X times the weights: one pass per column, no per-row gathering.
        let weights = DVector::from_column_slice(&self.raw.weights);
        let logits = (&calibrate.x * weights).add_scalar(self.raw.intercept);
        let design = Design {
            width: 2,
            values: logits.iter().flat_map(|&z| [1.0, z]).collect(),
        };
        let start = DVector::from_column_slice(&[0.0, 1.0]);
        match newton(&design, &calibrate.y, CALIBRATION_L2, start, opts) {
            // A decreasing map would reverse the ranking the model was fitted for.
            Ok(ab) if ab[1] > 0.0 && ab.iter().all(|v| v.is_finite()) => Calibration {
                slope: ab[1],
                intercept: ab[0],
            },
            _ => Calibration::IDENTITY,
        }
    }
}

/// What a stored model deserialises through, so a model loaded from outside is checked and its
/// scoring weights rebuilt before use.
#[derive(Deserialize)]
struct StoredModel {
    feature_names: Vec<String>,
    means: Vec<f64>,
    scales: Vec<f64>,
    intercept: f64,
    coefficients: Vec<f64>,
    calibration: Calibration,
}

impl TryFrom<StoredModel> for Model {
    type Error = ModelError;

    fn try_from(m: StoredModel) -> Result<Model, ModelError> {
        let n = m.feature_names.len();
        for (what, len) in [
            ("means", m.means.len()),
            ("scales", m.scales.len()),
            ("coefficients", m.coefficients.len()),
        ] {
            if len != n {
                return Err(ModelError::DimensionMismatch {
                    what: format!("stored model {what} (one per feature name)"),
                    expected: n,
                    found: len,
                });
            }
        }
        let finite = m.means.iter().chain(&m.coefficients).all(|v| v.is_finite())
            && [m.intercept, m.calibration.slope, m.calibration.intercept]
                .iter()
                .all(|v| v.is_finite());
        if !finite {
            return Err(ModelError::Corrupt("a parameter is not finite".into()));
        }
        if let Some(j) = m.scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(ModelError::Corrupt(format!(
                "scale of {} is {}, not a positive number",
                m.feature_names[j], m.scales[j]
            )));
        }
        Ok(Model::assemble(
            m.feature_names,
            m.means,
            m.scales,
            m.intercept,
            m.coefficients,
            m.calibration,
        ))
    }
}

fn check_options(opts: &TrainOptions) -> Result<(), ModelError> {
    if !(opts.l2.is_finite() && opts.l2 >= 0.0) {
        return Err(ModelError::InvalidOptions(format!(
            "l2 = {} must be a finite number >= 0",
            opts.l2
        )));
    }
    if !(opts.tolerance.is_finite() && opts.tolerance >= 0.0) {
        return Err(ModelError::InvalidOptions(format!(
            "tolerance = {} must be a finite number >= 0",
            opts.tolerance
        )));
    }
    Ok(())
}

fn check_dataset(
    dataset: &'static str,
    data: &Dataset,
    names: &[String],
) -> Result<(), ModelError> {
    let (rows, cols) = data.x.shape();
    if data.y.len() != rows {
        return Err(ModelError::DimensionMismatch {
            what: format!("{dataset} labels (one per row)"),
            expected: rows,
            found: data.y.len(),
        });
    }
    // An empty slice may come as 0×0; its width does not matter.
    if rows > 0 && cols != names.len() {
        return Err(ModelError::DimensionMismatch {
            what: format!("{dataset} columns (one per feature name)"),
            expected: names.len(),
            found: cols,
        });
    }
    match data.x.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(ModelError::NonFinite {
            dataset,
            row: i % rows,
            feature: names[i / rows].clone(),
            value: data.x.as_slice()[i],
        }),
        None => Ok(()),
    }
}

/// Per-column mean and population standard deviation of the training rows.
struct Standardiser {
    means: Vec<f64>,
    scales: Vec<f64>,
}

impl Standardiser {
    fn learn(x: &DMatrix<f64>) -> Standardiser {
        let n = x.nrows();
        let (means, scales) = x
            .as_slice()
            .chunks_exact(n)
            .map(|column| {
                let (lo, hi) = column
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                if lo == hi {
                    // A constant column: centring on its exact value makes it exactly zero, so
                    // it cannot move the fit, and scale 1 avoids dividing by zero.
                    return (lo, 1.0);
                }
                let mean = column.iter().sum::<f64>() / n as f64;
                let variance = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                let sd = variance.sqrt();
                (mean, if sd > 0.0 && sd.is_finite() { sd } else { 1.0 })
            })
            .unzip();
        Standardiser { means, scales }
    }
}

/// A design matrix stored row by row with the intercept column first: the layout the Newton
/// passes stream through (nalgebra's matrices are column-major).
struct Design {
    width: usize,
    values: Vec<f64>,
}

impl Design {
    fn standardised(x: &DMatrix<f64>, s: &Standardiser) -> Design {
        let (n, k) = x.shape();
        let width = k + 1;
        let mut values = vec![1.0; n * width];
        for (j, column) in x.as_slice().chunks_exact(n).enumerate() {
            let (mean, scale) = (s.means[j], s.scales[j]);
            for (row, v) in values.chunks_exact_mut(width).zip(column) {
                row[j + 1] = (v - mean) / scale;
            }
        }
        Design { width, values }
    }

    fn rows(&self) -> std::slice::ChunksExact<'_, f64> {
        self.values.chunks_exact(self.width)
    }
}

/// The penalised log-likelihood at some β with its gradient and information matrix
/// (XᵀWX + λI', the negative Hessian).
struct Pass {
    objective: f64,
    gradient: DVector<f64>,
    information: DMatrix<f64>,
}

/// One sweep over the rows. XᵀWX is accumulated row by row (upper triangle only), never
/// through an n×n weight matrix, so memory stays O(width²) beyond the data itself.
fn pass(design: &Design, labels: &[bool], beta: &DVector<f64>, l2: f64) -> Pass {
    let d = design.width;
    let b = beta.as_slice();
    let mut loglik = 0.0;
    let mut gradient = vec![0.0; d];
    let mut upper = vec![0.0; d * d];
    for (row, &y) in design.rows().zip(labels) {
        let eta = dot(row, b);
        let Logistic {
            probability,
            weight,
            neg_loglik,
        } = Logistic::at(eta, y);
        loglik -= neg_loglik;
        let residual = f64::from(u8::from(y)) - probability;
        for (g, x) in gradient.iter_mut().zip(row) {
            *g += residual * x;
        }
        for (j, &xj) in row.iter().enumerate() {
            let wx = weight * xj;
            for (h, xk) in upper[j * d + j..(j + 1) * d].iter_mut().zip(&row[j..]) {
                *h += wx * xk;
            }
        }
    }
    // The intercept (index 0) is not penalised.
    let penalty: f64 = b[1..].iter().map(|v| v * v).sum::<f64>() * l2 / 2.0;
    for (g, v) in gradient.iter_mut().zip(b).skip(1) {
        *g -= l2 * v;
    }
    let information = DMatrix::from_fn(d, d, |i, j| {
        let h = upper[i.min(j) * d + i.max(j)];
        if i == j && i > 0 { h + l2 } else { h }
    });
    Pass {
        objective: loglik - penalty,
        gradient: DVector::from_vec(gradient),
        information,
    }
}

/// Newton's method with step-halving on the penalised log-likelihood.
fn newton(
    design: &Design,
    labels: &[bool],
    l2: f64,
    start: DVector<f64>,
    opts: &TrainOptions,
) -> Result<DVector<f64>, ModelError> {
    let mut beta = start;
    let mut here = pass(design, labels, &beta, l2);
    for iteration in 1..=opts.max_iterations {
        let step = newton_step(&here.information, &here.gradient)
            .ok_or(ModelError::Singular { iteration })?;
        let Some((next_beta, next)) = halve_until_better(design, labels, l2, &beta, &step, &here)
        else {
            // Not even a tiny step uphill improves: β is optimal to floating-point precision.
            return Ok(beta);
        };
        // Relative change as R's glm measures it; the 0.1 keeps a near-zero optimum finite.
        let change = (next.objective - here.objective).abs() / (next.objective.abs() + 0.1);
        beta = next_beta;
        here = next;
        if change < opts.tolerance {
            return Ok(beta);
        }
    }
    Err(ModelError::NotConverged {
        iterations: opts.max_iterations,
    })
}

/// The largest of step, step/2, step/4, … that does not lower the objective.
fn halve_until_better(
    design: &Design,
    labels: &[bool],
    l2: f64,
    beta: &DVector<f64>,
    step: &DVector<f64>,
    here: &Pass,
) -> Option<(DVector<f64>, Pass)> {
    let mut t = 1.0;
    for _ in 0..MAX_HALVINGS {
        let candidate = beta + step * t;
        let there = pass(design, labels, &candidate, l2);
        // NaN compares false, so a step into overflow is halved too.
        if there.objective >= here.objective {
            return Some((candidate, there));
        }
        t /= 2.0;
    }
    None
}

/// Solves information · δ = gradient. The information matrix is positive definite whenever
/// l2 > 0 or the columns are independent; when rounding or collinearity breaks that, a
/// growing ridge is added, which still gives an uphill direction.
fn newton_step(information: &DMatrix<f64>, gradient: &DVector<f64>) -> Option<DVector<f64>> {
    let base = information.diagonal().amax().max(1.0) * 1e-12;
    let mut jitter = 0.0;
    for _ in 0..10 {
        let mut m = information.clone();
        for i in 0..m.nrows() {
            m[(i, i)] += jitter;
        }
        if let Some(cholesky) = m.cholesky() {
            let step = cholesky.solve(gradient);
            if step.iter().all(|v| v.is_finite()) {
                return Some(step);
            }
        }
        jitter = if jitter == 0.0 { base } else { jitter * 100.0 };
    }
    None
}

/// What one row contributes at linear predictor η.
struct Logistic {
    probability: f64,
    /// p(1 − p), the IRLS weight.
    weight: f64,
    /// −log P(y | η).
    neg_loglik: f64,
}

impl Logistic {
    /// Everything from one `exp(−|η|)`. The log-likelihood is taken as a softplus of η rather
    /// than ln(p), so it never sees a probability rounded to exactly 0 or 1: no clamp needed,
    /// no −∞, and the tails keep their precision.
    fn at(eta: f64, y: bool) -> Logistic {
        let e = (-eta.abs()).exp();
        let probability = if eta >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        let weight = e / ((1.0 + e) * (1.0 + e));
        // −log σ(η) = softplus(−η) and −log(1 − σ(η)) = softplus(η).
        let signed = if y { -eta } else { eta };
        Logistic {
            probability,
            weight,
            neg_loglik: signed.max(0.0) + e.ln_1p(),
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// How well scores rank and how honest they are as probabilities.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Area under the ROC curve: the chance that a random positive outscores a random negative,
    /// ties counting half. NaN when either class is missing (undefined).
    pub auc: f64,
    /// Mean squared error of the scores as probabilities.
    pub brier: f64,
    /// Share of positives among the top 1% of scores (at least one example), ties at the cut
    /// counted at their average rate.
    pub precision_at_1pct: f64,
    pub base_rate: f64,
    pub examples: usize,
    pub positives: usize,
    /// Reliability table over 10 equal-width bins of score; empty bins are left out.
    pub calibration: Vec<CalibrationBin>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

const CALIBRATION_BINS: usize = 10;

/// Measures `predictions` against `labels`. Rates over no examples are NaN.
///
/// # Panics
/// If the slices differ in length.
pub fn evaluate(predictions: &[f64], labels: &[bool]) -> Metrics {
    assert_eq!(predictions.len(), labels.len(), "one label per prediction");
    let n = predictions.len();
    let positives = labels.iter().filter(|&&y| y).count();
    let order = ascending(predictions);
    let brier = predictions
        .iter()
        .zip(labels)
        .map(|(p, &y)| (p - f64::from(u8::from(y))).powi(2))
        .sum::<f64>()
        / n as f64;
    Metrics {
        auc: auc_of_order(&order, predictions, labels),
        brier,
        precision_at_1pct: precision_at_top(&order, predictions, labels, n.div_ceil(100).max(1)),
        base_rate: positives as f64 / n as f64,
        examples: n,
        positives,
        calibration: calibration_bins(predictions, labels),
    }
}

/// Area under the ROC curve by the Mann–Whitney rank statistic, ties at average rank.
/// NaN when either class is missing.
///
/// # Panics
/// If the slices differ in length.
pub fn auc(predictions: &[f64], labels: &[bool]) -> f64 {
    assert_eq!(predictions.len(), labels.len(), "one label per prediction");
    auc_of_order(&ascending(predictions), predictions, labels)
}

/// Indices sorted by score, lowest first.
fn ascending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order
}

/// Runs of equal score in `order`.
fn tie_groups<'a>(
    order: &'a [usize],
    scores: &'a [f64],
) -> impl DoubleEndedIterator<Item = &'a [usize]> {
    order.chunk_by(move |&a, &b| scores[a] == scores[b])
}

fn auc_of_order(order: &[usize], scores: &[f64], labels: &[bool]) -> f64 {
    let positives = order.iter().filter(|&&i| labels[i]).count() as f64;
    let negatives = order.len() as f64 - positives;
    let mut positive_rank_sum = 0.0;
    let mut first_rank = 1.0;
    for group in tie_groups(order, scores) {
        let len = group.len() as f64;
        let average_rank = first_rank + (len - 1.0) / 2.0;
        let group_positives = group.iter().filter(|&&i| labels[i]).count() as f64;
        positive_rank_sum += group_positives * average_rank;
        first_rank += len;
    }
    let u = positive_rank_sum - positives * (positives + 1.0) / 2.0;
    u / (positives * negatives)
}

/// Precision among the `k` highest scores. A tie group straddling the cut contributes its
/// positive rate for the places it takes, i.e. the expectation over random tie-breaking.
fn precision_at_top(order: &[usize], scores: &[f64], labels: &[bool], k: usize) -> f64 {
    if order.is_empty() {
        return f64::NAN;
    }
    let k = k.min(order.len());
    let (mut taken, mut hits) = (0, 0.0);
    for group in tie_groups(order, scores).rev() {
        let places = group.len().min(k - taken);
        let group_positives = group.iter().filter(|&&i| labels[i]).count() as f64;
        hits += group_positives * places as f64 / group.len() as f64;
        taken += places;
        if taken == k {
            break;
        }
    }
    hits / k as f64
}

fn calibration_bins(predictions: &[f64], labels: &[bool]) -> Vec<CalibrationBin> {
    let mut count = [0usize; CALIBRATION_BINS];
    let mut predicted = [0.0; CALIBRATION_BINS];
    let mut observed = [0usize; CALIBRATION_BINS];
    for (&p, &y) in predictions.iter().zip(labels) {
        // Saturating cast: scores outside [0, 1] (or NaN) land in the end bins, never panic.
        let bin = ((p * CALIBRATION_BINS as f64) as usize).min(CALIBRATION_BINS - 1);
        count[bin] += 1;
        predicted[bin] += p;
        observed[bin] += usize::from(y);
    }
    (0..CALIBRATION_BINS)
        .filter(|&b| count[b] > 0)
        .map(|b| CalibrationBin {
            lower: b as f64 / CALIBRATION_BINS as f64,
            upper: (b + 1) as f64 / CALIBRATION_BINS as f64,
            count: count[b],
            mean_predicted: predicted[b] / count[b] as f64,
            observed_rate: observed[b] as f64 / count[b] as f64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|j| format!("f{j}")).collect()
    }

    /// Feature j cycles through three shapes: uniform on [−2, 2]; uniform on [0, 10] (mean 5,
    /// so raw and standardised units differ); a 30% indicator.
    fn draw(rng: &mut StdRng, j: usize) -> f64 {
        match j % 3 {
            0 => rng.random_range(-2.0..2.0),
            1 => rng.random_range(0.0..10.0),
            _ => f64::from(u8::from(rng.random::<f64>() < 0.3)),
        }
    }

    /// Rows from a known logistic process whose true logit is `logit_scale` × (intercept + x·coefs).
    fn simulate(
        rng: &mut StdRng,
        rows: usize,
        intercept: f64,
        coefs: &[f64],
        logit_scale: f64,
    ) -> Dataset {
        let x = DMatrix::from_fn(rows, coefs.len(), |_, j| draw(rng, j));
        let y = (0..rows)
            .map(|r| {
                let eta = intercept
                    + coefs
                        .iter()
                        .enumerate()
                        .map(|(j, c)| c * x[(r, j)])
                        .sum::<f64>();
                rng.random::<f64>() < sigmoid(logit_scale * eta)
            })
            .collect();
        Dataset { x, y }
    }

    fn empty(k: usize) -> Dataset {
        Dataset {
            x: DMatrix::zeros(0, k),
            y: Vec::new(),
        }
    }

    fn options(l2: f64) -> TrainOptions {
        TrainOptions {
            l2,
            ..TrainOptions::default()
        }
    }

    fn norm(v: &[f64]) -> f64 {
        v.iter().map(|c| c * c).sum::<f64>().sqrt()
    }

    fn brier(predictions: impl Iterator<Item = f64>, labels: &[bool]) -> f64 {
        let p: Vec<f64> = predictions.collect();
        evaluate(&p, labels).brier
    }

    fn rows(data: &Dataset) -> impl Iterator<Item = Vec<f64>> + '_ {
        data.x.row_iter().map(|r| r.iter().copied().collect())
    }

    /// A model with chosen parameters, built the way a stored one is loaded.
    fn hand_model() -> Model {
        Model::try_from(StoredModel {
            feature_names: ["docs", "errors", "usage", "sdk_lag"]
                .map(String::from)
                .to_vec(),
            means: vec![0.0, 0.0, 0.0, 5.0],
            scales: vec![1.0, 1.0, 2.0, 1.0],
            intercept: 0.5,
            coefficients: vec![1.0, -2.0, 0.5, 3.0],
            calibration: Calibration {
                slope: 2.0,
                intercept: 0.5,
            },
        })
        .expect("consistent parameters")
    }

    #[test]
    fn recovers_the_coefficients_of_a_known_logistic_process() {
        let mut rng = StdRng::seed_from_u64(7);
        let (intercept, coefs) = (-1.5, [0.8, -0.3, 1.2]);
        let train = simulate(&mut rng, 200_000, intercept, &coefs, 1.0);
        let model = Model::fit(names(3), &train, &empty(3), &options(1e-6)).expect("fits");

        let (b0, b) = model.coefficients_raw_scale();
        assert!(
            (b0 - intercept).abs() < 0.05,
            "intercept {b0} vs {intercept}"
        );
        for (j, (fitted, truth)) in b.iter().zip(coefs).enumerate() {
            assert!(
                (fitted - truth).abs() < 0.05,
                "coefficient {j}: {fitted} vs {truth}"
            );
        }
        assert_eq!(model.calibration, Calibration::IDENTITY);
    }

    #[test]
    fn l2_shrinks_coefficients_toward_zero_as_it_grows() {
        let mut rng = StdRng::seed_from_u64(11);
        let train = simulate(&mut rng, 2_000, -0.5, &[0.8, -0.3, 1.2], 1.0);
        let norms: Vec<f64> = [0.01, 10.0, 1_000.0, 100_000.0]
            .iter()
            .map(|&l2| {
                let model = Model::fit(names(3), &train, &empty(3), &options(l2)).expect("fits");
                norm(&model.coefficients)
            })
            .collect();
        assert!(norms.windows(2).all(|w| w[1] < w[0]), "norms {norms:?}");
        assert!(norms[3] < 0.05 * norms[0], "norms {norms:?}");
    }

    #[test]
    fn calibration_fixes_a_mis_scaled_model() {
        let mut rng = StdRng::seed_from_u64(3);
        let (intercept, coefs) = (-1.0, [0.6, -0.2, 0.9]);
        // The world changed after training: logits are twice what the training rows taught.
        let train = simulate(&mut rng, 20_000, intercept, &coefs, 1.0);
        let calibrate = simulate(&mut rng, 20_000, intercept, &coefs, 2.0);
        let test = simulate(&mut rng, 20_000, intercept, &coefs, 2.0);
        let model =
            Model::fit(names(3), &train, &calibrate, &TrainOptions::default()).expect("fits");

        assert!(
            (model.calibration.slope - 2.0).abs() < 0.2,
            "{:?}",
            model.calibration
        );
        let raw = brier(rows(&test).map(|x| sigmoid(model.raw_logit(&x))), &test.y);
        let calibrated = brier(rows(&test).map(|x| model.probability(&x)), &test.y);
        assert!(
            calibrated < raw - 0.005,
            "Brier calibrated {calibrated} vs raw {raw}"
        );
    }

    #[test]
    fn calibration_stays_identity_without_two_classes_to_fit_on() {
        let mut rng = StdRng::seed_from_u64(5);
        let train = simulate(&mut rng, 1_000, 0.0, &[1.0], 1.0);
        let all_negative = Dataset {
            x: DMatrix::from_element(50, 1, 0.5),
            y: vec![false; 50],
        };
        for calibrate in [
            empty(1),
            Dataset {
                x: DMatrix::zeros(0, 0),
                y: vec![],
            },
            all_negative,
        ] {
            let model =
                Model::fit(names(1), &train, &calibrate, &TrainOptions::default()).expect("fits");
            assert_eq!(model.calibration, Calibration::IDENTITY);
        }
    }

    #[test]
    fn auc_is_one_for_perfect_separation_zero_reversed_and_half_for_all_ties() {
        let labels = [false, false, true, true];
        assert_eq!(auc(&[0.1, 0.2, 0.3, 0.4], &labels), 1.0);
        assert_eq!(auc(&[0.4, 0.3, 0.2, 0.1], &labels), 0.0);
        assert_eq!(auc(&[0.5; 4], &labels), 0.5);
    }

    #[test]
    fn auc_matches_hand_counted_pairs_with_ties() {
        // Pairs (positive, negative): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 → 3 of 4.
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        // Positive 0.5 beats 0.2 and ties 0.5 (half); positive 0.9 beats both: 3.5 of 4.
        assert_eq!(
            auc(&[0.2, 0.5, 0.5, 0.9], &[false, true, false, true]),
            0.875
        );
        assert!(
            auc(&[0.3, 0.6], &[true, true]).is_nan(),
            "undefined without negatives"
        );
    }

    #[test]
    fn precision_at_1pct_takes_the_top_scores_and_averages_ties_at_the_cut() {
        // 200 rows → the top 2: scores 199 (positive) and 198 (negative).
        let scores: Vec<f64> = (0..200).map(|i| f64::from(i) / 200.0).collect();
        let mut labels = vec![false; 200];
        labels[199] = true;
        labels[10] = true;
        assert_eq!(evaluate(&scores, &labels).precision_at_1pct, 0.5);

        // 100 rows → the top 1, but two rows tie for it and one of them is positive.
        let mut scores = vec![0.1; 100];
        scores[40] = 0.9;
        scores[41] = 0.9;
        let mut labels = vec![true; 100];
        labels[41] = false;
        assert_eq!(evaluate(&scores, &labels).precision_at_1pct, 0.5);

        // Fewer than 100 rows still measures the single top one.
        assert_eq!(evaluate(&[0.2, 0.7], &[false, true]).precision_at_1pct, 1.0);
    }

    #[test]
    fn evaluate_reports_brier_base_rate_and_non_empty_calibration_bins() {
        let m = evaluate(
            &[0.05, 0.05, 0.15, 0.95, 1.0],
            &[true, false, false, true, true],
        );
        // (0.95² + 0.05² + 0.15² + 0.05² + 0²) / 5
        assert!((m.brier - 0.186).abs() < 1e-12, "brier {}", m.brier);
        assert_eq!((m.examples, m.positives, m.base_rate), (5, 3, 0.6));
        let bins: Vec<(f64, f64, usize)> = m
            .calibration
            .iter()
            .map(|b| (b.lower, b.upper, b.count))
            .collect();
        assert_eq!(bins, [(0.0, 0.1, 2), (0.1, 0.2, 1), (0.9, 1.0, 2)]);
        let rates: Vec<(f64, f64)> = m
            .calibration
            .iter()
            .map(|b| (b.mean_predicted, b.observed_rate))
            .collect();
        let expected = [(0.05, 0.5), (0.15, 0.0), (0.975, 1.0)];
        for ((p, o), (ep, eo)) in rates.iter().zip(expected) {
            assert!(
                (p - ep).abs() < 1e-12 && (o - eo).abs() < 1e-12,
                "{rates:?}"
            );
        }
    }

    #[test]
    fn evaluate_of_nothing_is_nan_not_a_panic() {
        let m = evaluate(&[], &[]);
        assert!(m.auc.is_nan() && m.brier.is_nan() && m.precision_at_1pct.is_nan());
        assert!(m.calibration.is_empty());
    }

    #[test]
    fn explain_returns_only_positive_contributions_largest_first() {
        let model = hand_model();
        // Contributions: docs 1·2 = 2; errors −2·1 = −2; usage 0.5·4/2 = 1; sdk_lag 3·(4−5) = −3.
        let x = [2.0, 1.0, 4.0, 4.0];
        let reasons = model.explain(&x, 3);
        let got: Vec<(usize, &str, f64, f64)> = reasons
            .iter()
            .map(|c| (c.feature, c.name.as_str(), c.value, c.logit))
            .collect();
        assert_eq!(got, [(0, "docs", 2.0, 2.0), (2, "usage", 4.0, 1.0)]);
        assert_eq!(model.explain(&x, 1).len(), 1);
        // The parts add up to the score being explained.
        assert!((model.raw_logit(&x) - (0.5 + 2.0 - 2.0 + 1.0 - 3.0)).abs() < 1e-12);
        assert!((model.probability(&x) - sigmoid(2.0 * -1.5 + 0.5)).abs() < 1e-12);
    }

    #[test]
    fn single_class_training_data_is_an_error_not_a_panic() {
        let x = DMatrix::from_fn(20, 2, |r, c| (r * (c + 1)) as f64);
        let all = |y| Dataset {
            x: x.clone(),
            y: vec![y; 20],
        };
        let opts = TrainOptions::default();
        assert!(matches!(
            Model::fit(names(2), &all(false), &empty(2), &opts),
            Err(ModelError::NoPositives)
        ));
        assert!(matches!(
            Model::fit(names(2), &all(true), &empty(2), &opts),
            Err(ModelError::NoNegatives)
        ));
        assert!(matches!(
            Model::fit(names(2), &empty(2), &empty(2), &opts),
            Err(ModelError::EmptyDataset)
        ));
    }

    #[test]
    fn malformed_inputs_are_named_errors() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut train = simulate(&mut rng, 100, 0.0, &[1.0, 1.0], 1.0);
        let opts = TrainOptions::default();
        let err = Model::fit(names(3), &train, &empty(3), &opts).expect_err("3 names, 2 columns");
        assert!(
            matches!(
                err,
                ModelError::DimensionMismatch {
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
        train.x[(42, 1)] = f64::NAN;
        let err = Model::fit(names(2), &train, &empty(2), &opts).expect_err("NaN feature");
        assert_eq!(
            err.to_string(),
            "training row 42: f1 = NaN is not a finite number"
        );
        let err = Model::fit(names(2), &train, &empty(2), &options(-1.0)).expect_err("negative l2");
        assert!(matches!(err, ModelError::InvalidOptions(_)), "{err}");
    }

    #[test]
    fn constant_columns_give_finite_outputs_and_zero_weight() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut train = simulate(&mut rng, 2_000, -0.5, &[1.0, 0.0, 0.0], 1.0);
        train.x.column_mut(1).fill(7.0);
        train.x.column_mut(2).fill(0.0);
        // Without a penalty the constant columns make the information matrix singular.
        for l2 in [0.0, 1.0] {
            let model = Model::fit(names(3), &train, &empty(3), &options(l2)).expect("fits");
            assert_eq!(model.scales[1..], [1.0, 1.0]);
            let (b0, b) = model.coefficients_raw_scale();
            assert!(
                b0.is_finite() && b.iter().all(|v| v.is_finite()),
                "{b0} {b:?}"
            );
            assert!(
                b[1].abs() < 1e-9 && b[2].abs() < 1e-9,
                "constant columns got weight {b:?}"
            );
            let p = model.probability(&[0.5, 3.0, 1.0]);
            assert!(p.is_finite() && p > 0.0 && p < 1.0, "p = {p}");
            assert!(
                model
                    .explain(&[0.5, 3.0, 1.0], 3)
                    .iter()
                    .all(|c| c.logit.is_finite())
            );
        }
    }

    #[test]
    fn stored_model_round_trips_and_a_corrupt_one_is_rejected() {
        let model = hand_model();
        let json = serde_json::to_string(&model).expect("serialises");
        let loaded: Model = serde_json::from_str(&json).expect("deserialises");
        let x = [1.0, 0.5, 3.0, 6.0];
        assert_eq!(loaded.probability(&x), model.probability(&x));
        assert_eq!(
            loaded.coefficients_raw_scale(),
            model.coefficients_raw_scale()
        );

        let mut value: serde_json::Value = serde_json::from_str(&json).expect("json");
        value["scales"] = serde_json::json!([1.0, 1.0, 0.0, 1.0]);
        let err = serde_json::from_value::<Model>(value.clone()).expect_err("zero scale");
        assert!(err.to_string().contains("scale of usage is 0"), "{err}");
        value["scales"] = serde_json::json!([1.0]);
        assert!(
            serde_json::from_value::<Model>(value).is_err(),
            "short scales"
        );
    }

    #[test]
    fn check_features_catches_a_changed_feature_set() {
        let model = hand_model();
        assert!(
            model
                .check_features(&["docs", "errors", "usage", "sdk_lag"])
                .is_ok()
        );
        assert!(model.check_features(&["docs", "errors", "usage"]).is_err());
        assert!(
            model
                .check_features(&["docs", "errors", "sdk_lag", "usage"])
                .is_err()
        );
    }
}
