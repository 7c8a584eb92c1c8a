//! The learning-rate schedule of the reference trainer: linear warm-up from 0, then a cosine
//! decay to `min_ratio` × peak (spec §6.2):
//! multiplier = e + (1 − e)·(½ + ½·cos(π·t)), t = (iter − warmup)/(max − warmup − 1), e = min_ratio.

/// The schedule over `total` iterations (0-based).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    pub peak: f64,
    pub warmup: u64,
    pub total: u64,
    pub min_ratio: f64,
}

impl LrSchedule {
    /// The learning rate at 0-based iteration `iter`.
    pub fn lr(&self, iter: u64) -> f64 {
        self.peak * self.multiplier(iter)
    }

    pub fn multiplier(&self, iter: u64) -> f64 {
        if iter < self.warmup {
            return iter as f64 / self.warmup as f64;
        }
        // A run with no iteration after warm-up but the first one stays at the peak (t = 0).
        let span = self.total.saturating_sub(self.warmup + 1);
        let t = if span == 0 {
            0.0
        } else {
            ((iter - self.warmup) as f64 / span as f64).min(1.0)
        };
        let e = self.min_ratio;
        e + (1.0 - e) * (0.5 + 0.5 * (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = LrSchedule {
            peak: 1e-3,
            warmup: 10,
            total: 110,
            min_ratio: 0.1,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.5e-3).abs() < 1e-15);
        assert!((s.lr(10) - 1e-3).abs() < 1e-15);
        // halfway through the cosine: e + (1 − e)/2
        let mid = 10 + 99 / 2;
        let t = (mid - 10) as f64 / 99.0;
        let want = 1e-3 * (0.1 + 0.9 * (0.5 + 0.5 * (std::f64::consts::PI * t).cos()));
        assert!((s.lr(mid) - want).abs() < 1e-15);
        assert!((s.lr(109) - 1e-4).abs() < 1e-15);
        // monotone after warm-up
        for i in 10..109 {
            assert!(s.lr(i + 1) <= s.lr(i));
        }
    }

    #[test]
    fn single_step_runs_at_the_peak() {
        let s = LrSchedule {
            peak: 2e-3,
            warmup: 0,
            total: 1,
            min_ratio: 0.1,
        };
        assert_eq!(s.lr(0), 2e-3);
    }
}
