//! Recursive-descent parser following Python's expression grammar precedence.

use super::lex::Tok;
use super::value::PyVal;
use super::{ExprError, ExprErrorKind, MAX_NESTING};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Pos,
    Invert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(PyVal),
    Name(String),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Attr(Box<Expr>, String),
    Call(Box<Expr>, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Slice(Box<Expr>, [Option<Box<Expr>>; 3]),
    Unary(UnOp, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IfElse(Box<Expr>, Box<Expr>, Box<Expr>),
}

const UNSUPPORTED_KEYWORDS: [&str; 8] = [
    "lambda", "for", "yield", "await", "async", "del", "import", "from",
];
const KEYWORDS: [&str; 11] = [
    "if", "else", "and", "or", "not", "in", "is", "None", "True", "False", "elif",
];

pub fn parse(toks: &[Tok]) -> Result<Expr, ExprError> {
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    if toks.is_empty() {
        return Err(ExprError::syntax("invalid syntax (empty expression)"));
    }
    let e = p.expr_list()?;
    if let Some(t) = p.peek() {
        return Err(p.unexpected(t));
    }
    Ok(e)
}

fn too_deep() -> ExprError {
    ExprError::new(
        ExprErrorKind::Limit,
        format!(
            "the expression is nested more than {MAX_NESTING} levels deep (brackets, operators \
             and chains all count)"
        ),
    )
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    /// Nesting of the recursive rules now (bounded by [`MAX_NESTING`]).
    depth: usize,
}

impl Parser<'_> {
    /// One more link of a left-associative chain (`a + b + c`, `a.b.c`): each makes the tree
    /// one level deeper, so chains count against [`MAX_NESTING`] too. The caller resets
    /// `depth` when its chain ends (after an error the parser is dropped anyway).
    fn deeper(&mut self) -> Result<(), ExprError> {
        if self.depth >= MAX_NESTING {
            return Err(too_deep());
        }
        self.depth += 1;
        Ok(())
    }

    /// Run a recursive rule one level deeper, refusing inputs nested past [`MAX_NESTING`]
    /// (the stack is the limit otherwise).
    fn nested<T>(
        &mut self,
        rule: impl FnOnce(&mut Self) -> Result<T, ExprError>,
    ) -> Result<T, ExprError> {
        if self.depth >= MAX_NESTING {
            return Err(too_deep());
        }
        self.depth += 1;
        let r = rule(self);
        self.depth -= 1;
        r
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == kw)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        let hit = self.is_op(op);
        if hit {
            self.pos += 1;
        }
        hit
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }
    fn expect_op(&mut self, op: &str) -> Result<(), ExprError> {
        if self.eat_op(op) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => self.unexpected(t),
            None => ExprError::syntax(format!("invalid syntax (expected '{op}' at the end)")),
        })
    }
    fn unexpected(&self, t: &Tok) -> ExprError {
        match t {
            Tok::Name(n) if UNSUPPORTED_KEYWORDS.contains(&n.as_str()) => {
                ExprError::unsupported(format!("'{n}'"))
            }
            Tok::Op(op @ ("=" | ":=")) => ExprError::unsupported(format!("assignment '{op}'")),
            Tok::Op(op @ ("<<" | ">>" | "&" | "|")) => {
                ExprError::unsupported(format!("the bitwise operator '{op}'"))
            }
            Tok::Op(op) => ExprError::syntax(format!("invalid syntax near '{op}'")),
            Tok::Name(n) => ExprError::syntax(format!("invalid syntax near '{n}'")),
            Tok::Str(s) => ExprError::syntax(format!("invalid syntax near string {s:?}")),
            Tok::Int(_) | Tok::Float(_) => ExprError::syntax("invalid syntax near a number"),
        }
    }

    /// `a, b` at top level / in parentheses makes a tuple.
    fn expr_list(&mut self) -> Result<Expr, ExprError> {
        let first = self.expr()?;
        if !self.is_op(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op(",") {
            if self.at_close() {
                break;
            }
            items.push(self.expr()?);
        }
        Ok(Expr::Tuple(items))
    }

    fn at_close(&self) -> bool {
        self.peek().is_none() || self.is_op(")") || self.is_op("]") || self.is_op("}")
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        self.nested(Self::expr_inner)
    }

    fn expr_inner(&mut self) -> Result<Expr, ExprError> {
        if self.is_kw("lambda") {
            return Err(ExprError::unsupported("'lambda'"));
        }
        let e = self.or_test()?;
        if self.eat_kw("if") {
            let cond = self.or_test()?;
            if !self.eat_kw("else") {
                return Err(ExprError::syntax("expected 'else' after 'if' expression"));
            }
            let other = self.expr()?;
            return Ok(Expr::IfElse(Box::new(cond), Box::new(e), Box::new(other)));
        }
        if self.is_kw("for") {
            return Err(ExprError::unsupported("a comprehension ('for')"));
        }
        Ok(e)
    }

    fn or_test(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.and_test()?;
        let start = self.depth;
        while self.eat_kw("or") {
            self.deeper()?;
            e = Expr::Or(Box::new(e), Box::new(self.and_test()?));
        }
        self.depth = start;
        Ok(e)
    }

    fn and_test(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.not_test()?;
        let start = self.depth;
        while self.eat_kw("and") {
            self.deeper()?;
            e = Expr::And(Box::new(e), Box::new(self.not_test()?));
        }
        self.depth = start;
        Ok(e)
    }

    fn not_test(&mut self) -> Result<Expr, ExprError> {
        if self.eat_kw("not") {
            return Ok(Expr::Not(Box::new(self.nested(Self::not_test)?)));
        }
        self.comparison()
    }

    fn comp_op(&mut self) -> Option<CmpOp> {
        let op = match self.peek()? {
            Tok::Op("==") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Name(n) if n == "in" => CmpOp::In,
            Tok::Name(n) if n == "is" => {
                self.pos += 1;
                return Some(if self.eat_kw("not") {
                    CmpOp::IsNot
                } else {
                    CmpOp::Is
                });
            }
            Tok::Name(n)
                if n == "not"
                    && matches!(self.toks.get(self.pos + 1), Some(Tok::Name(m)) if m == "in") =>
            {
                self.pos += 2;
                return Some(CmpOp::NotIn);
            }
            _ => return None,
        };
        self.pos += 1;
        Some(op)
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let first = self.arith()?;
        let mut rest = Vec::new();
        while let Some(op) = self.comp_op() {
            rest.push((op, self.arith()?));
        }
        if rest.is_empty() {
            Ok(first)
        } else {
            Ok(Expr::Compare(Box::new(first), rest))
        }
    }

    fn arith(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.term()?;
        let start = self.depth;
        loop {
            let op = if self.eat_op("+") {
                BinOp::Add
            } else if self.eat_op("-") {
                BinOp::Sub
            } else {
                self.depth = start;
                return Ok(e);
            };
            self.deeper()?;
            e = Expr::Bin(op, Box::new(e), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.factor()?;
        let start = self.depth;
        loop {
            let op = if self.eat_op("*") {
                BinOp::Mul
            } else if self.eat_op("/") {
                BinOp::Div
            } else if self.eat_op("//") {
                BinOp::FloorDiv
            } else if self.eat_op("%") {
                BinOp::Mod
            } else {
                self.depth = start;
                return Ok(e);
            };
            self.deeper()?;
            e = Expr::Bin(op, Box::new(e), Box::new(self.factor()?));
        }
    }

    fn factor(&mut self) -> Result<Expr, ExprError> {
        let op = if self.eat_op("-") {
            UnOp::Neg
        } else if self.eat_op("+") {
            UnOp::Pos
        } else if self.eat_op("~") {
            UnOp::Invert
        } else {
            return self.power();
        };
        Ok(Expr::Unary(op, Box::new(self.nested(Self::factor)?)))
    }

    fn power(&mut self) -> Result<Expr, ExprError> {
        let base = self.primary()?;
        if self.eat_op("**") {
            let exp = self.nested(Self::factor)?;
            return Ok(Expr::Bin(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.atom()?;
        let start = self.depth;
        loop {
            if self.is_op(".") || self.is_op("(") || self.is_op("[") {
                self.deeper()?;
            }
            if self.eat_op(".") {
                match self.peek() {
                    Some(Tok::Name(n)) => {
                        let n = n.clone();
                        self.pos += 1;
                        e = Expr::Attr(Box::new(e), n);
                    }
                    _ => return Err(ExprError::syntax("invalid syntax after '.'")),
                }
            } else if self.eat_op("(") {
                let mut args = Vec::new();
                while !self.eat_op(")") {
                    if self.is_op("*") || self.is_op("**") {
                        return Err(ExprError::unsupported("argument unpacking"));
                    }
                    args.push(self.expr()?);
                    if self.is_op("=") {
                        return Err(ExprError::unsupported("a keyword argument"));
                    }
                    if !self.eat_op(",") {
                        self.expect_op(")")?;
                        break;
                    }
                }
                e = Expr::Call(Box::new(e), args);
            } else if self.eat_op("[") {
                e = self.subscript(e)?;
            } else {
                self.depth = start;
                return Ok(e);
            }
        }
    }

    fn subscript(&mut self, target: Expr) -> Result<Expr, ExprError> {
        let mut parts: [Option<Box<Expr>>; 3] = [None, None, None];
        let mut idx = 0;
        let mut is_slice = false;
        loop {
            if self.eat_op("]") {
                break;
            }
            if self.eat_op(":") {
                is_slice = true;
                idx += 1;
                if idx > 2 {
                    return Err(ExprError::syntax("invalid slice"));
                }
                continue;
            }
            if parts[idx].is_some() {
                return Err(match self.peek() {
                    Some(t) => self.unexpected(t),
                    None => ExprError::syntax("invalid syntax (unclosed '[')"),
                });
            }
            parts[idx] = Some(Box::new(self.expr_list()?));
        }
        if is_slice {
            return Ok(Expr::Slice(Box::new(target), parts));
        }
        match parts[0].take() {
            Some(i) => Ok(Expr::Index(Box::new(target), i)),
            None => Err(ExprError::syntax("invalid syntax (empty subscript)")),
        }
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        let Some(t) = self.peek().cloned() else {
            return Err(ExprError::syntax(
                "invalid syntax (unexpected end of expression)",
            ));
        };
        self.pos += 1;
        match t {
            Tok::Int(i) => Ok(Expr::Const(PyVal::Int(i))),
            Tok::Float(f) => Ok(Expr::Const(PyVal::Float(f))),
            Tok::Str(mut s) => {
                while let Some(Tok::Str(more)) = self.peek() {
                    s.push_str(more);
                    self.pos += 1;
                }
                Ok(Expr::Const(PyVal::Str(s)))
            }
            Tok::Name(ref n) => match n.as_str() {
                "None" => Ok(Expr::Const(PyVal::None)),
                "True" => Ok(Expr::Const(PyVal::Bool(true))),
                "False" => Ok(Expr::Const(PyVal::Bool(false))),
                _ if UNSUPPORTED_KEYWORDS.contains(&n.as_str())
                    || KEYWORDS.contains(&n.as_str()) =>
                {
                    self.pos -= 1;
                    Err(self.unexpected(&t))
                }
                _ => Ok(Expr::Name(n.clone())),
            },
            Tok::Op("(") => {
                if self.eat_op(")") {
                    return Ok(Expr::Tuple(Vec::new()));
                }
                let e = self.expr_list()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.eat_op("]") {
                    items.push(self.expr()?);
                    if self.is_kw("for") {
                        return Err(ExprError::unsupported("a list comprehension"));
                    }
                    if !self.eat_op(",") {
                        self.expect_op("]")?;
                        break;
                    }
                }
                Ok(Expr::List(items))
            }
            Tok::Op("{") => {
                let mut pairs = Vec::new();
                while !self.eat_op("}") {
                    let k = self.expr()?;
                    if !self.eat_op(":") {
                        return Err(ExprError::unsupported("a set literal or comprehension"));
                    }
                    let v = self.expr()?;
                    if self.is_kw("for") {
                        return Err(ExprError::unsupported("a dict comprehension"));
                    }
                    pairs.push((k, v));
                    if !self.eat_op(",") {
                        self.expect_op("}")?;
                        break;
                    }
                }
                Ok(Expr::Dict(pairs))
            }
            other => {
                self.pos -= 1;
                Err(self.unexpected(&other))
            }
        }
    }
}
