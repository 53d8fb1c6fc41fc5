use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sel(s: &str) -> Selector {
    match Selector::parse(s) {
        Ok(v) => v,
        Err(e) => panic!("{s:?} should parse:\n{e}"),
    }
}

fn err(s: &str) -> SelectorError {
    match Selector::parse(s) {
        Ok(v) => panic!("{s:?} should not parse, got {v:?}"),
        Err(e) => e,
    }
}

fn set(vals: &[&str]) -> BTreeSet<String> {
    vals.iter().map(|v| v.to_string()).collect()
}

#[test]
fn empty_and_all() {
    assert_eq!(sel(""), Selector::All);
    assert_eq!(sel("   "), Selector::All);
    assert_eq!(sel("all()"), Selector::All);
    assert_eq!(sel(" all ( ) "), Selector::All);
    assert!(sel("").matches(&labels(&[])));
    assert!(sel("all()").matches(&labels(&[("a", "b")])));
}

#[test]
fn each_operator_parses_and_matches() {
    let web = labels(&[("app", "nginx"), ("tier", "frontend-1")]);
    let none = labels(&[]);
    let cases: &[(&str, Selector, bool, bool)] = &[
        ("has(app)", Selector::Has("app".into()), true, false),
        (
            "!has(app)",
            Selector::Not(Box::new(Selector::Has("app".into()))),
            false,
            true,
        ),
        (
            "app == 'nginx'",
            Selector::Eq("app".into(), "nginx".into()),
            true,
            false,
        ),
        (
            "app == \"nginx\"",
            Selector::Eq("app".into(), "nginx".into()),
            true,
            false,
        ),
        (
            "app != 'nginx'",
            Selector::Ne("app".into(), "nginx".into()),
            false,
            true,
        ),
        (
            "app != 'x'",
            Selector::Ne("app".into(), "x".into()),
            true,
            true,
        ),
        (
            "app in {'nginx', 'x'}",
            Selector::In("app".into(), set(&["nginx", "x"])),
            true,
            false,
        ),
        (
            "app in {}",
            Selector::In("app".into(), set(&[])),
            false,
            false,
        ),
        (
            "app not in {'nginx'}",
            Selector::NotIn("app".into(), set(&["nginx"])),
            false,
            true,
        ),
        (
            "app not in {'x',\"y\"}",
            Selector::NotIn("app".into(), set(&["x", "y"])),
            true,
            true,
        ),
        (
            "tier contains 'end'",
            Selector::Contains("tier".into(), "end".into()),
            true,
            false,
        ),
        (
            "tier starts with 'front'",
            Selector::StartsWith("tier".into(), "front".into()),
            true,
            false,
        ),
        (
            "tier ends with '-1'",
            Selector::EndsWith("tier".into(), "-1".into()),
            true,
            false,
        ),
        (
            "tier ends with 'front'",
            Selector::EndsWith("tier".into(), "front".into()),
            false,
            false,
        ),
    ];
    for (text, ast, on_web, on_none) in cases {
        let got = sel(text);
        assert_eq!(&got, ast, "{text}");
        assert_eq!(got.matches(&web), *on_web, "{text} on web");
        assert_eq!(got.matches(&none), *on_none, "{text} on no labels");
    }
}

#[test]
fn keys_with_dns_prefix_and_punctuation() {
    let s = sel("projectcalico.org/namespace == 'default' && my_key-1.x == 'v'");
    assert_eq!(
        s,
        Selector::And(vec![
            Selector::Eq("projectcalico.org/namespace".into(), "default".into()),
            Selector::Eq("my_key-1.x".into(), "v".into()),
        ])
    );
    assert!(s.matches(&labels(&[
        ("projectcalico.org/namespace", "default"),
        ("my_key-1.x", "v")
    ])));
    // Operators need no spaces around them.
    assert_eq!(sel("a=='b'&&!has(c)"), sel("a == 'b' && !has(c)"));
    // Keywords are ordinary keys where a key is expected.
    assert_eq!(sel("in == 'x'"), Selector::Eq("in".into(), "x".into()));
    assert_eq!(sel("has == 'x'"), Selector::Eq("has".into(), "x".into()));
}

#[test]
fn precedence_not_and_or() {
    // ! > && > ||
    let s = sel("a == '1' || b == '2' && !c == '3'");
    assert_eq!(
        s,
        Selector::Or(vec![
            Selector::Eq("a".into(), "1".into()),
            Selector::And(vec![
                Selector::Eq("b".into(), "2".into()),
                Selector::Not(Box::new(Selector::Eq("c".into(), "3".into()))),
            ]),
        ])
    );
    assert!(s.matches(&labels(&[("a", "1")])));
    assert!(s.matches(&labels(&[("b", "2")])));
    assert!(!s.matches(&labels(&[("b", "2"), ("c", "3")])));
    // Parentheses override.
    let p = sel("(a == '1' || b == '2') && c == '3'");
    assert!(!p.matches(&labels(&[("a", "1")])));
    assert!(p.matches(&labels(&[("a", "1"), ("c", "3")])));
    // ! applies to the parenthesised group.
    let n = sel("!(a == '1' || b == '2')");
    assert!(n.matches(&labels(&[])));
    assert!(!n.matches(&labels(&[("b", "2")])));
    // Nested groups of the same kind are flattened.
    assert_eq!(
        sel("a == '1' && (b == '2' && c == '3')"),
        sel("a == '1' && b == '2' && c == '3'")
    );
    assert_eq!(sel("((has(a)))"), sel("has(a)"));
    assert_eq!(
        sel("!!has(a)"),
        Selector::Not(Box::new(Selector::Not(Box::new(Selector::Has("a".into())))))
    );
}

#[test]
fn canonical_display() {
    let cases = [
        ("app=='nginx'", "app == \"nginx\""),
        ("a in {'z','a' , 'm'}", "a in {\"a\", \"m\", \"z\"}"),
        ("a not in {}", "a not in {}"),
        ("x == 'say \"hi\"'", "x == 'say \"hi\"'"),
        ("!has( k )", "!has(k)"),
        ("!(a=='1'&&b=='2')", "!(a == \"1\" && b == \"2\")"),
        (
            "(a=='1'||b=='2')&&c=='3'",
            "(a == \"1\" || b == \"2\") && c == \"3\"",
        ),
        (
            "a=='1'||(b=='2'&&c=='3')",
            "a == \"1\" || b == \"2\" && c == \"3\"",
        ),
        (
            "k starts with 'a' || k ends with 'b' || k contains 'c'",
            "k starts with \"a\" || k ends with \"b\" || k contains \"c\"",
        ),
        ("", "all()"),
    ];
    for (input, canonical) in cases {
        assert_eq!(sel(input).to_string(), canonical, "{input}");
        assert_eq!(sel(canonical), sel(input), "{canonical} re-parses");
    }
}

#[test]
fn errors_have_position_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        ("app == nginx", 7, "must be quoted"),
        ("app = 'nginx'", 4, "use `==`"),
        ("app", 3, "expected an operator"),
        ("app == 'nginx", 7, "unterminated"),
        ("app == 'a' &", 11, "use `&&`"),
        ("app == 'a' | b == 'c'", 11, "use `||`"),
        ("(app == 'a'", 11, "close the `(` at position 0"),
        ("app == 'a')", 10, "unbalanced"),
        ("app == 'a' b == 'c'", 11, "join expressions"),
        ("app is 'a'", 4, "found `is`"),
        ("app not 'a'", 8, "`not` must be followed by `in`"),
        ("app starts 'a'", 11, "followed by `with`"),
        ("app ends on 'a'", 9, "followed by `with`"),
        ("app in 'a'", 7, "expected `{`"),
        ("app in {'a' 'b'}", 12, "expected `,` or `}`"),
        ("app in {'a',", 12, "expected a quoted value"),
        ("has()", 4, "expected a label key inside has"),
        ("has(a b)", 6, "exactly one label key"),
        ("all(a)", 4, "all() takes no argument"),
        ("foo(a)", 0, "unknown function `foo()`"),
        ("'a' == app", 0, "quoted value must follow"),
        ("app == 'a' &&", 13, "ends here"),
        ("()", 1, "unexpected `)`"),
        ("== 'a'", 0, "unexpected `=`"),
        ("é == 'a'", 0, "unexpected `é`"),
    ];
    for (input, pos, reason) in cases {
        let e = err(input);
        assert_eq!(e.position, *pos, "{input}: {e}");
        assert!(e.reason.contains(reason), "{input}: {e}");
        assert_eq!(e.input, *input);
    }
}

#[test]
fn error_display_has_caret_under_position() {
    let e = err("app == nginx");
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("invalid selector at position 7:"),
        "{text}"
    );
    assert_eq!(lines[1], "  app == nginx");
    assert_eq!(lines[2], "         ^");
    // Positions count characters, not bytes.
    let e = err("app == 'ü' && é");
    assert_eq!(e.position, 14);
    assert!(e.to_string().ends_with(&format!("  {}^", " ".repeat(14))));
}

#[test]
fn deep_nesting_is_refused_not_crashing() {
    let deep = format!("{}has(a){}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&deep).reason.contains("nested"));
    let nots = format!("{}has(a)", "!".repeat(10_000));
    assert!(err(&nots).reason.contains("nested"));
    let ok = format!("{}has(a){}", "(".repeat(20), ")".repeat(20));
    assert_eq!(sel(&ok), Selector::Has("a".into()));
}

#[test]
fn combinators_flatten_and_drop_all() {
    let a = Selector::Has("a".into());
    let b = Selector::Has("b".into());
    let c = Selector::Has("c".into());
    assert_eq!(Selector::All.and(a.clone()), a);
    assert_eq!(
        a.clone().and(b.clone()).and(c.clone()),
        Selector::And(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(a.clone().or(Selector::All), Selector::All);
    assert_eq!(
        a.clone().or(b.clone().or(c.clone())),
        Selector::Or(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(Selector::all_of([]), Selector::All);
    let mapped = sel("has(a) && b == 'x'").map_keys(&|k| format!("pcns.{k}"));
    assert_eq!(mapped.to_string(), "has(pcns.a) && pcns.b == \"x\"");
}

#[test]
fn serde_uses_canonical_text() {
    let s = sel("a=='1'");
    let json = serde_json::to_string(&s).unwrap_or_default();
    assert_eq!(json, "\"a == \\\"1\\\"\"");
    let back: Selector = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(back, s);
    assert!(serde_json::from_str::<Selector>("\"a = 'b'\"").is_err());
}

/// A tiny deterministic generator (xorshift) for property-style tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &[
    "app",
    "role",
    "projectcalico.org/namespace",
    "a-b_c.d",
    "in",
    "x1",
];
const VALUES: &[&str] = &["", "nginx", "pod1", "a b", "it's", "say \"hi\"", "ü", "x"];

fn random_selector(rng: &mut Rng, depth: u32) -> Selector {
    let leaf = depth == 0 || rng.below(3) == 0;
    if leaf {
        let k = rng.pick(KEYS).to_string();
        let v = rng.pick(VALUES).to_string();
        let mut s = BTreeSet::new();
        for _ in 0..rng.below(3) {
            s.insert(rng.pick(VALUES).to_string());
        }
        return match rng.below(10) {
            0 => Selector::All,
            1 => Selector::Has(k),
            2 => Selector::Eq(k, v),
            3 => Selector::Ne(k, v),
            4 => Selector::In(k, s),
            5 => Selector::NotIn(k, s),
            6 => Selector::Contains(k, v),
            7 => Selector::StartsWith(k, v),
            8 => Selector::EndsWith(k, v),
            _ => Selector::Not(Box::new(Selector::Has(k))),
        };
    }
    let n = 2 + rng.below(3);
    let parts: Vec<Selector> = (0..n).map(|_| random_selector(rng, depth - 1)).collect();
    match rng.below(3) {
        0 => Selector::Not(Box::new(random_selector(rng, depth - 1))),
        // Build through the parser's own flattening so the tree is canonical.
        1 => flatten_canonical(parts, true),
        _ => flatten_canonical(parts, false),
    }
}

fn flatten_canonical(parts: Vec<Selector>, and: bool) -> Selector {
    let mut out = Vec::new();
    for p in parts {
        match (p, and) {
            (Selector::And(v), true) | (Selector::Or(v), false) => out.extend(v),
            (p, _) => out.push(p),
        }
    }
    if and {
        Selector::And(out)
    } else {
        Selector::Or(out)
    }
}

fn random_labels(rng: &mut Rng) -> BTreeMap<String, String> {
    (0..rng.below(4))
        .map(|_| (rng.pick(KEYS).to_string(), rng.pick(VALUES).to_string()))
        .collect()
}

#[test]
fn canonical_form_reparses_to_the_same_tree() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let s = random_selector(&mut rng, 4);
        let text = s.to_string();
        let back = sel(&text);
        assert_eq!(back, s, "{text}");
        assert_eq!(back.to_string(), text);
        for _ in 0..5 {
            let l = random_labels(&mut rng);
            assert_eq!(back.matches(&l), s.matches(&l), "{text} on {l:?}");
        }
    }
}

#[test]
fn whitespace_and_spelling_do_not_change_the_tree() {
    let mut rng = Rng(12345);
    for _ in 0..500 {
        let s = random_selector(&mut rng, 3);
        let text = s.to_string();
        // Squeeze out optional spaces around symbolic operators and add some elsewhere.
        let squeezed = text
            .replace(" && ", "&&")
            .replace(" || ", "||")
            .replace(" == ", "==")
            .replace(" != ", "!=")
            .replace('(', " ( ");
        assert_eq!(sel(&squeezed), s, "{squeezed}");
    }
}
