//! Symbolic dimensions: integer polynomials in named symbols, closed under
//! `+`, `−`, `×` and floor division by a positive integer.
//!
//! A symbolic dim is kept in a canonical form, so two dims are equal exactly
//! when their forms are: `N·3` from a Flatten and `3·N` from a Reshape are
//! the same dim. The form is a sum of terms `c·m` with non-zero integer
//! coefficients, sorted by monomial; a monomial is a sorted product of
//! atoms with powers; an atom is a named symbol (`N`, `height`, or a fresh
//! `NonZero_12_count` for a data-dependent dim) or `floor(p/d)` of a
//! polynomial that `d` does not divide. Floor division pulls whole
//! multiples out (`floor((2N + 3)/2) = N + 1 + floor(1/2)` → `N + 1`) and
//! nests (`floor((floor(p/a) + c)/b) = floor((p + c·a)/(a·b))`), so a chain
//! of stride-2 convs on a symbolic height stays one atom:
//! `floor((height + 31)/32)`.
//!
//! Arithmetic gives up (`None`, an unknown dim) when a form would grow past
//! [`MAX_TERMS`] terms or [`MAX_DEPTH`] nested divisions: symbols are for
//! keeping shapes readable and comparable, not for a computer algebra
//! system.

use std::fmt;
use std::sync::Arc;

/// Largest number of terms a symbolic dim may have.
pub const MAX_TERMS: usize = 16;
/// Deepest nesting of floor divisions.
pub const MAX_DEPTH: usize = 8;

/// A factor of a monomial.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// A named symbol.
    Name(Arc<str>),
    /// `floor(p / d)` with `d ≥ 2` not dividing `p`.
    FloorDiv(Arc<Poly>, i64),
}

/// A product of atoms with their powers, sorted by atom; empty is 1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mono(Vec<(Atom, u32)>);

/// A sum of `coefficient · monomial` terms, sorted by monomial, no zero
/// coefficients (the constant term has the empty monomial).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Poly(Vec<(Mono, i64)>);

/// A symbolic dim that is not a plain number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(Arc<Poly>);

impl Mono {
    fn one() -> Mono {
        Mono(Vec::new())
    }

    fn is_one(&self) -> bool {
        self.0.is_empty()
    }

    fn mul(&self, o: &Mono) -> Mono {
        let mut v = self.0.clone();
        for (a, p) in &o.0 {
            match v.binary_search_by(|(x, _)| x.cmp(a)) {
                Ok(i) => v[i].1 += p,
                Err(i) => v.insert(i, (a.clone(), *p)),
            }
        }
        Mono(v)
    }

    /// `self / o` when `o`'s atoms all divide `self`.
    fn div(&self, o: &Mono) -> Option<Mono> {
        let mut v = self.0.clone();
        for (a, p) in &o.0 {
            let i = v.binary_search_by(|(x, _)| x.cmp(a)).ok()?;
            if v[i].1 < *p {
                return None;
            }
            v[i].1 -= p;
            if v[i].1 == 0 {
                v.remove(i);
            }
        }
        Some(Mono(v))
    }

    fn depth(&self) -> usize {
        self.0
            .iter()
            .map(|(a, _)| match a {
                Atom::Name(_) => 0,
                Atom::FloorDiv(p, _) => 1 + p.depth(),
            })
            .max()
            .unwrap_or(0)
    }

    fn eval(&self, bind: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        let mut acc = 1i64;
        for (a, p) in &self.0 {
            let x = match a {
                Atom::Name(n) => bind(n)?,
                Atom::FloorDiv(q, d) => q.eval(bind)?.div_euclid(*d),
            };
            acc = acc.checked_mul(x.checked_pow(*p)?)?;
        }
        Some(acc)
    }
}

impl Poly {
    pub fn constant(c: i64) -> Poly {
        if c == 0 {
            Poly(Vec::new())
        } else {
            Poly(vec![(Mono::one(), c)])
        }
    }

    pub fn name(n: &str) -> Poly {
        Poly(vec![(Mono(vec![(Atom::Name(n.into()), 1)]), 1)])
    }

    fn atom(a: Atom) -> Poly {
        Poly(vec![(Mono(vec![(a, 1)]), 1)])
    }

    /// The value when the polynomial is a constant.
    pub fn as_const(&self) -> Option<i64> {
        match self.0.as_slice() {
            [] => Some(0),
            [(m, c)] if m.is_one() => Some(*c),
            _ => None,
        }
    }

    fn constant_term(&self) -> i64 {
        match self.0.first() {
            Some((m, c)) if m.is_one() => *c,
            _ => 0,
        }
    }

    fn depth(&self) -> usize {
        self.0.iter().map(|(m, _)| m.depth()).max().unwrap_or(0)
    }

    fn checked(self) -> Option<Poly> {
        (self.0.len() <= MAX_TERMS && self.depth() <= MAX_DEPTH).then_some(self)
    }

    /// Sums terms, merging equal monomials and dropping zeros.
    fn from_terms(mut terms: Vec<(Mono, i64)>) -> Option<Poly> {
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Mono, i64)> = Vec::with_capacity(terms.len());
        for (m, c) in terms {
            match out.last_mut() {
                Some((lm, lc)) if *lm == m => *lc = lc.checked_add(c)?,
                _ => out.push((m, c)),
            }
        }
        out.retain(|(_, c)| *c != 0);
        Poly(out).checked()
    }

    pub fn add(&self, o: &Poly) -> Option<Poly> {
        Poly::from_terms(self.0.iter().chain(&o.0).cloned().collect())
    }

    pub fn scale(&self, k: i64) -> Option<Poly> {
        let terms = self
            .0
            .iter()
            .map(|(m, c)| Some((m.clone(), c.checked_mul(k)?)))
            .collect::<Option<Vec<_>>>()?;
        Poly::from_terms(terms)
    }

    pub fn sub(&self, o: &Poly) -> Option<Poly> {
        self.add(&o.scale(-1)?)
    }

    pub fn mul(&self, o: &Poly) -> Option<Poly> {
        let mut terms = Vec::with_capacity(self.0.len() * o.0.len());
        for (m1, c1) in &self.0 {
            for (m2, c2) in &o.0 {
                terms.push((m1.mul(m2), c1.checked_mul(*c2)?));
            }
        }
        Poly::from_terms(terms)
    }

    /// `floor(self / d)` for `d ≥ 1`.
    pub fn floor_div(&self, d: i64) -> Option<Poly> {
        if d < 1 {
            return None;
        }
        if d == 1 {
            return Some(self.clone());
        }
        // floor((floor(p/a) + c)/d) = floor((p + c·a)/(a·d)).
        let last = match self.0.as_slice() {
            [only] => Some(only),
            [(c, _), last] if c.is_one() => Some(last),
            _ => None,
        };
        if let Some((m, 1)) = last {
            if let [(Atom::FloorDiv(p, a), 1)] = m.0.as_slice() {
                let c = self.constant_term();
                let inner = p.add(&Poly::constant(c.checked_mul(*a)?))?;
                return inner.floor_div(a.checked_mul(d)?);
            }
        }
        // Whole multiples of d come out: p = d·q + r with r's coefficients
        // in [0, d), so floor(p/d) = q + floor(r/d).
        let mut q = Vec::new();
        let mut r = Vec::new();
        for (m, c) in &self.0 {
            let (qc, rc) = (c.div_euclid(d), c.rem_euclid(d));
            if qc != 0 {
                q.push((m.clone(), qc));
            }
            if rc != 0 {
                r.push((m.clone(), rc));
            }
        }
        let q = Poly::from_terms(q)?;
        let r = Poly::from_terms(r)?;
        match r.as_const() {
            // 0 ≤ r < d.
            Some(_) => Some(q),
            None => q.add(&Poly::atom(Atom::FloorDiv(Arc::new(r), d))),
        }
    }

    /// `self / o` when `o` is one term that divides every term exactly
    /// (a Reshape's −1 over symbolic dims); `None` otherwise.
    pub fn div_exact(&self, o: &Poly) -> Option<Poly> {
        let [(om, oc)] = o.0.as_slice() else {
            return None;
        };
        let terms = self
            .0
            .iter()
            .map(|(m, c)| {
                (c.checked_rem(*oc)? == 0).then_some(())?;
                Some((m.div(om)?, c / oc))
            })
            .collect::<Option<Vec<_>>>()?;
        Poly::from_terms(terms)
    }

    /// The value with every symbol bound by `bind`; `None` if one is not.
    pub fn eval(&self, bind: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        self.0.iter().try_fold(0i64, |acc, (m, c)| {
            acc.checked_add(m.eval(bind)?.checked_mul(*c)?)
        })
    }

    /// The polynomial with the symbols `bind` knows replaced by their
    /// values (the others kept); `None` if the result overflows.
    pub fn substitute(&self, bind: &dyn Fn(&str) -> Option<i64>) -> Option<Poly> {
        let mut acc = Poly::default();
        for (m, c) in &self.0 {
            let mut term = Poly::constant(*c);
            for (a, p) in &m.0 {
                let f = match a {
                    Atom::Name(n) => match bind(n) {
                        Some(v) => Poly::constant(v),
                        None => Poly::atom(a.clone()),
                    },
                    Atom::FloorDiv(q, d) => q.substitute(bind)?.floor_div(*d)?,
                };
                for _ in 0..*p {
                    term = term.mul(&f)?;
                }
            }
            acc = acc.add(&term)?;
        }
        Some(acc)
    }

    /// Every named symbol, each once, in order.
    pub fn names(&self, out: &mut Vec<Arc<str>>) {
        for (m, _) in &self.0 {
            for (a, _) in &m.0 {
                match a {
                    Atom::Name(n) => {
                        if !out.contains(n) {
                            out.push(n.clone());
                        }
                    }
                    Atom::FloorDiv(p, _) => p.names(out),
                }
            }
        }
    }

    /// True when the value is ≥ 0 for every non-negative binding of the
    /// symbols: every coefficient is positive (dims are never negative).
    pub fn is_non_negative(&self) -> bool {
        self.0.iter().all(|(_, c)| *c > 0)
    }
}

impl Sym {
    /// A named symbol.
    pub fn name(n: &str) -> Sym {
        Sym(Arc::new(Poly::name(n)))
    }

    /// The symbol's name when it is a plain named symbol.
    pub fn as_name(&self) -> Option<&str> {
        match self.0 .0.as_slice() {
            [(m, 1)] => match m.0.as_slice() {
                [(Atom::Name(n), 1)] => Some(n),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn poly(&self) -> &Poly {
        &self.0
    }

    /// A polynomial as a dim: `Known` when it is constant.
    pub fn from_poly(p: Poly) -> crate::shape::Dim {
        match p.as_const() {
            Some(c) => crate::shape::Dim::Known(c),
            None => crate::shape::Dim::Sym(Sym(Arc::new(p))),
        }
    }
}

impl From<&str> for Sym {
    fn from(n: &str) -> Sym {
        Sym::name(n)
    }
}

impl From<String> for Sym {
    fn from(n: String) -> Sym {
        Sym::name(&n)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Name(n) => f.write_str(n),
            Atom::FloorDiv(p, d) => {
                if p.0.len() == 1 && p.0[0].1 == 1 {
                    write!(f, "floor({p}/{d})")
                } else {
                    write!(f, "floor(({p})/{d})")
                }
            }
        }
    }
}

impl fmt::Display for Mono {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, p)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("*")?;
            }
            write!(f, "{a}")?;
            if *p > 1 {
                write!(f, "^{p}")?;
            }
        }
        Ok(())
    }
}

/// `2*N*H + W - 1`: symbols first, the constant last.
impl fmt::Display for Poly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("0");
        }
        let terms = self
            .0
            .iter()
            .filter(|(m, _)| !m.is_one())
            .chain(self.0.iter().filter(|(m, _)| m.is_one()));
        for (i, (m, c)) in terms.enumerate() {
            let mag = c.unsigned_abs();
            match (i, *c < 0) {
                (0, true) => f.write_str("-")?,
                (0, false) => {}
                (_, true) => f.write_str(" - ")?,
                (_, false) => f.write_str(" + ")?,
            }
            if m.is_one() {
                write!(f, "{mag}")?;
            } else if mag == 1 {
                write!(f, "{m}")?;
            } else {
                write!(f, "{mag}*{m}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sym({:?})", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Poly {
        Poly::name(s)
    }
    fn k(c: i64) -> Poly {
        Poly::constant(c)
    }

    #[test]
    fn products_commute_and_print_readably() {
        let a = n("N").mul(&k(3)).unwrap();
        let b = k(3).mul(&n("N")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "3*N");
        let hw = n("H").mul(&n("W")).unwrap().mul(&n("N")).unwrap();
        assert_eq!(hw.to_string(), "H*N*W");
        let e = n("H").add(&k(-1)).unwrap();
        assert_eq!(e.to_string(), "H - 1");
        assert_eq!(k(5).sub(&k(5)).unwrap().as_const(), Some(0));
    }

    #[test]
    fn floor_division_extracts_multiples_and_nests() {
        // (2N + 4) / 2 = N + 2 exactly.
        let p = n("N").scale(2).unwrap().add(&k(4)).unwrap();
        assert_eq!(p.floor_div(2).unwrap(), n("N").add(&k(2)).unwrap());
        // A 3x3 stride-2 pad-1 conv: floor((H + 2 - 3)/2) + 1 = floor((H + 1)/2).
        let conv = |h: &Poly| {
            h.add(&k(-1))
                .unwrap()
                .floor_div(2)
                .unwrap()
                .add(&k(1))
                .unwrap()
        };
        let h1 = conv(&n("H"));
        assert_eq!(h1.to_string(), "floor((H + 1)/2)");
        let h5 = (0..4).fold(h1, |h, _| conv(&h));
        assert_eq!(h5.to_string(), "floor((H + 31)/32)");
        for h in [1i64, 31, 32, 33, 640, 641] {
            let mut x = h;
            for _ in 0..5 {
                x = (x - 1).div_euclid(2) + 1;
            }
            assert_eq!(h5.eval(&|_| Some(h)), Some(x), "H = {h}");
        }
    }

    #[test]
    fn substitution_binds_some_symbols() {
        let p = n("N")
            .mul(&n("H"))
            .unwrap()
            .add(&n("H").add(&k(1)).unwrap().floor_div(2).unwrap())
            .unwrap();
        let q = p.substitute(&|s| (s == "H").then_some(7)).unwrap();
        assert_eq!(q.to_string(), "7*N + 4");
        assert_eq!(p.substitute(&|_| Some(2)).unwrap().as_const(), Some(5));
    }

    #[test]
    fn exact_division_of_reshape_totals() {
        let total = n("N").mul(&k(144 * 8400)).unwrap();
        let known = n("N").mul(&k(144)).unwrap();
        assert_eq!(total.div_exact(&known).unwrap().as_const(), Some(8400));
        assert!(n("N").div_exact(&k(2)).is_none());
        assert!(n("N").add(&k(1)).unwrap().div_exact(&n("N")).is_none());
    }

    #[test]
    fn growth_is_capped() {
        // (s0 + 1)(s1 + 1)…: 2^i terms; 32 is past the cap.
        let mut p = Some(k(1));
        for i in 0..5 {
            p = p.and_then(|p| p.mul(&n(&format!("s{i}")).add(&k(1)).unwrap()));
            assert_eq!(p.is_some(), i < 4, "after s{i}");
        }
        // floor(floor(H/2)/3) nests into one atom, floor(H/6).
        let f = n("H").floor_div(2).unwrap().floor_div(3).unwrap();
        assert_eq!(f, n("H").floor_div(6).unwrap());
        // A sum with a division keeps its other terms.
        let g = n("W")
            .add(&n("H").floor_div(2).unwrap())
            .unwrap()
            .floor_div(3)
            .unwrap();
        assert_eq!(g.to_string(), "floor((W + floor(H/2))/3)");
    }
}
