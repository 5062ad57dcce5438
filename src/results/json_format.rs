//! The results file's layout: objects one key a line, as serde_json's
//! pretty printer writes them, but arrays of numbers (and strings) on one
//! line. A rate series is thousands of numbers a trial; one a line with
//! its indent took 25 bytes a bin, inline it takes the number and a comma.
//! Arrays holding objects or arrays put each element on its own line.

use std::io::{self, Write};

use serde_json::ser::Formatter;

/// One open array or object.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// It holds an object or an array (elements go on their own lines).
    nested: bool,
    /// It has at least one element or key.
    filled: bool,
}

/// serde_json formatter: pretty objects, inline arrays of scalars.
#[derive(Debug, Default)]
pub(crate) struct InlineArrays {
    open: Vec<Open>,
    /// Whether the innermost open container is an array.
    in_array: Vec<bool>,
}

impl InlineArrays {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.open.len() {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// A container starts: inside an array it takes its own line.
    fn container<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.in_array.last() == Some(&true) {
            if let Some(top) = self.open.last_mut() {
                top.nested = true;
            }
            self.newline(w)?;
        }
        Ok(())
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, end: &[u8], array: bool) -> io::Result<()> {
        let top = self.open.pop();
        self.in_array.pop();
        if let Some(top) = top {
            if top.filled && (top.nested || !array) {
                self.newline(w)?;
            }
        }
        w.write_all(end)
    }
}

impl Formatter for InlineArrays {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.container(w)?;
        self.open.push(Open {
            nested: false,
            filled: false,
        });
        self.in_array.push(true);
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]", true)
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if let Some(top) = self.open.last_mut() {
            top.filled = true;
        }
        if first {
            Ok(())
        } else {
            w.write_all(b",")
        }
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.container(w)?;
        self.open.push(Open {
            nested: true,
            filled: false,
        });
        self.in_array.push(false);
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}", false)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if let Some(top) = self.open.last_mut() {
            top.filled = true;
        }
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `value` as JSON in the results file's layout.
pub(crate) fn to_string<T: serde::Serialize>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, InlineArrays::default());
    value.serialize(&mut ser)?;
    // serde_json writes only valid UTF-8
    Ok(String::from_utf8(out).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_inline_objects_and_rows_on_their_own_lines() {
        let v = json!({"a": [1, 2, 3], "b": {"c": []}, "d": [{"e": 1}, {}], "m": [[1, 2], [3]], "s": "x"});
        let text = to_string(&v).unwrap();
        assert_eq!(
            text,
            "{\n  \"a\": [1,2,3],\n  \"b\": {\n    \"c\": []\n  },\n  \"d\": [\n    {\n      \"e\": 1\n    },\n    {}\n  ],\n  \"m\": [\n    [1,2],\n    [3]\n  ],\n  \"s\": \"x\"\n}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
