//! Reading and rewriting the SQL text of a site's schema (`CREATE TABLE` lines, view and
//! trigger definitions) token by token: identifiers (bare or between backticks, a backtick in
//! a name doubled) are told apart from string literals and comments, which pass through as
//! they are.

/// One token of SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word: a keyword, a number or an identifier.
    Word(String),
    /// An identifier between backticks, unescaped.
    Quoted(String),
    /// Anything else (a string literal, a comment, white space, one punctuation character),
    /// written back as it was.
    Text(String),
}

impl Tok {
    /// The identifier this token names, bare or quoted.
    pub fn ident(&self) -> Option<&str> {
        match self {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            Tok::Text(_) => None,
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits SQL text into tokens; [`join`] gives the same text back (identifiers re-quoted).
pub(crate) fn tokens(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let take = |from: usize, to: usize| chars[from..to.min(chars.len())].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            '`' => {
                let mut name = String::new();
                i += 1;
                while i < chars.len() {
                    if chars[i] == '`' {
                        if chars.get(i + 1) == Some(&'`') {
                            name.push('`');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                out.push(Tok::Quoted(name));
            }
            '\'' | '"' => {
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\\' {
                        i += 2;
                        continue;
                    }
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                out.push(Tok::Text(take(start, i)));
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i = (i + 2).min(chars.len());
                out.push(Tok::Text(take(start, i)));
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                out.push(Tok::Text(take(start, i)));
            }
            '-' if chars.get(i + 1) == Some(&'-')
                && chars.get(i + 2).is_none_or(|c| c.is_whitespace()) =>
            {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                out.push(Tok::Text(take(start, i)));
            }
            c if is_word_char(c) => {
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Word(take(start, i)));
            }
            c if c.is_whitespace() => {
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
                out.push(Tok::Text(take(start, i)));
            }
            _ => {
                i += 1;
                out.push(Tok::Text(c.to_string()));
            }
        }
    }
    out
}

/// `name` between backticks, a backtick in it doubled.
pub(crate) fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(crate) fn join(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Word(w) | Tok::Text(w) => w.clone(),
            Tok::Quoted(q) => quoted(q),
        })
        .collect()
}

/// Renames identifiers: each one `rename` gives a new name for is written quoted with it;
/// `database`.` qualifiers naming `drop_qualifier` are left out (a definition read from one
/// database is created in another).
pub(crate) fn rename_identifiers(
    sql: &str,
    drop_qualifier: Option<&str>,
    rename: &dyn Fn(&str) -> Option<String>,
) -> String {
    let toks = tokens(sql);
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if let (Some(db), Some(name)) = (drop_qualifier, t.ident())
            && name == db
            && toks.get(i + 1) == Some(&Tok::Text(".".into()))
            && toks.get(i + 2).and_then(Tok::ident).is_some()
        {
            i += 2;
            continue;
        }
        // A name after a `.` is a column: it keeps its name.
        let after_dot = out.last() == Some(&Tok::Text(".".into()));
        match t.ident().filter(|_| !after_dot).and_then(rename) {
            Some(new) => out.push(Tok::Quoted(new)),
            None => out.push(t.clone()),
        }
        i += 1;
    }
    join(&out)
}

/// A `CONSTRAINT ... FOREIGN KEY ... REFERENCES ...` line of a `CREATE TABLE`, as parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignKey {
    pub name: String,
    /// The referenced table, unqualified; none when it names another database.
    pub references: Option<String>,
}

/// A foreign key's new name and the table it references; none: the key is left out.
pub(crate) type Renamed = Option<(String, String)>;

/// Rewrites the foreign keys of a `CREATE TABLE`'s lines: each constraint's name and the
/// table it references, as `rename` says (`None`: leave the line out).
pub(crate) fn rewrite_foreign_keys(
    create: &str,
    rename: &mut dyn FnMut(&ForeignKey) -> anyhow::Result<Renamed>,
) -> anyhow::Result<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in create.split('\n') {
        let toks = tokens(line);
        let words: Vec<usize> = toks
            .iter()
            .enumerate()
            .filter(|(_, t)| !matches!(t, Tok::Text(s) if s.trim().is_empty()))
            .map(|(i, _)| i)
            .collect();
        let is_fk = words
            .first()
            .is_some_and(|&i| toks[i].is_word("CONSTRAINT"))
            && words.get(2).is_some_and(|&i| toks[i].is_word("FOREIGN"));
        if !is_fk {
            lines.push(line.to_owned());
            continue;
        }
        let name_at = words[1];
        let refs_at = words
            .iter()
            .position(|&i| toks[i].is_word("REFERENCES"))
            .and_then(|p| words.get(p + 1).copied())
            .ok_or_else(|| anyhow::anyhow!("a foreign key without REFERENCES"))?;
        let qualified = toks.get(refs_at + 1) == Some(&Tok::Text(".".into()));
        let fk = ForeignKey {
            name: toks[name_at].ident().unwrap_or_default().to_owned(),
            references: (!qualified).then(|| toks[refs_at].ident().unwrap_or_default().to_owned()),
        };
        match rename(&fk)? {
            None => {
                // The line before loses its comma when this one was the last.
                if !line.trim_end().ends_with(',')
                    && let Some(prev) = lines.last_mut()
                    && let Some(stripped) = prev.trim_end().strip_suffix(',')
                {
                    *prev = stripped.to_owned();
                }
            }
            Some((name, table)) => {
                let mut toks = toks;
                toks[name_at] = Tok::Quoted(name);
                if !qualified {
                    toks[refs_at] = Tok::Quoted(table);
                }
                lines.push(join(&toks));
            }
        }
    }
    Ok(lines.join("\n"))
}

/// The table a `CREATE TABLE` names, and what follows its name.
pub(crate) fn split_create_table(create: &str) -> anyhow::Result<(String, String)> {
    let toks = tokens(create);
    let mut words = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Tok::Text(s) if s.trim().is_empty()));
    let ok = words.next().is_some_and(|(_, t)| t.is_word("CREATE"))
        && words.next().is_some_and(|(_, t)| t.is_word("TABLE"));
    let name = words
        .next()
        .filter(|_| ok)
        .and_then(|(i, t)| Some((i, t.ident()?)));
    let Some((at, name)) = name else {
        anyhow::bail!("an unexpected CREATE TABLE");
    };
    Ok((name.to_owned(), join(&toks[at + 1..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_give_the_same_text_back() {
        for sql in [
            "select `a``b`.`c` AS `c` from `db`.`a``b` where x = 'it''s `not` a name' -- `x`\n",
            "INSERT INTO wp_log VALUES (NEW.ID, \"wp_posts\") /* wp_posts */ # wp_x",
            "SET @x = 'a\\'b'",
        ] {
            assert_eq!(join(&tokens(sql)), sql);
        }
    }

    #[test]
    fn identifiers_are_renamed_outside_strings_and_comments_only() {
        let rename = |n: &str| n.strip_prefix("wp_").map(|s| format!("stg_{s}"));
        assert_eq!(
            rename_identifiers(
                "INSERT INTO wp_log (p) VALUES (NEW.wp_id); -- wp_log\nSELECT 'wp_log'",
                None,
                &rename
            ),
            "INSERT INTO `stg_log` (p) VALUES (NEW.wp_id); -- wp_log\nSELECT 'wp_log'"
        );
        assert_eq!(
            rename_identifiers(
                "select `live`.`wp_posts`.`ID` AS `ID` from `live`.`wp_posts`",
                Some("live"),
                &rename
            ),
            "select `stg_posts`.`ID` AS `ID` from `stg_posts`"
        );
        assert_eq!(
            rename_identifiers("select `we``ird` from `wp_a``b`", None, &rename),
            "select `we``ird` from `stg_a``b`"
        );
    }

    #[test]
    fn foreign_keys_are_renamed_or_left_out() {
        let create = "CREATE TABLE `wp_wc_download_log` (\n  `id` bigint NOT NULL,\n  `permission_id` bigint NOT NULL,\n  PRIMARY KEY (`id`),\n  CONSTRAINT `fk_wp_wc_download_log_permission_id` FOREIGN KEY (`permission_id`) REFERENCES `wp_woocommerce_downloadable_product_permissions` (`permission_id`) ON DELETE CASCADE\n) ENGINE=InnoDB";
        let renamed = rewrite_foreign_keys(create, &mut |fk| {
            assert_eq!(fk.name, "fk_wp_wc_download_log_permission_id");
            Ok(Some((
                fk.name.replace("wp_", "stg_"),
                fk.references.clone().unwrap().replace("wp_", "stg_"),
            )))
        })
        .unwrap();
        assert!(renamed.contains("CONSTRAINT `fk_stg_wc_download_log_permission_id` FOREIGN KEY (`permission_id`) REFERENCES `stg_woocommerce_downloadable_product_permissions` (`permission_id`) ON DELETE CASCADE\n)"), "{renamed}");
        let dropped = rewrite_foreign_keys(create, &mut |_| Ok(None)).unwrap();
        assert!(
            dropped.contains("PRIMARY KEY (`id`)\n) ENGINE"),
            "{dropped}"
        );
        assert_eq!(
            split_create_table("CREATE TABLE `a(b` (\n  `x` int\n)").unwrap(),
            ("a(b".to_owned(), " (\n  `x` int\n)".to_owned())
        );
    }
}
