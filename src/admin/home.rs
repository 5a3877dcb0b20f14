//! `GET /`: the admin home page, an HTML table of every endpoint like Envoy's (a link for
//! a GET endpoint, a form with a button for a POST one, an input per query parameter).

use super::Endpoint;

/// The page for these endpoints (the home page itself is left out).
pub fn html(endpoints: &[Endpoint]) -> String {
    let mut rows = String::new();
    for (i, e) in endpoints.iter().filter(|e| e.path != "/").enumerate() {
        let action = escape(e.path.trim_start_matches('/'));
        let class = if i % 2 == 1 { " class='gray'" } else { "" };
        let command = if e.post_only {
            format!(
                "<form action='{action}' method='post' id='{action}' class='home-form'><button>{action}</button></form>"
            )
        } else if e.params.is_empty() {
            format!("<a href='{action}'>{action}</a>")
        } else {
            format!(
                "<form action='{action}' method='get' id='{action}' class='home-form'>\
                 <button class='button-as-link'>{action}</button></form>"
            )
        };
        rows.push_str(&format!(
            "<tr{class}>\n  <td class='home-data'>{command}</td>\n  <td class='home-data'>{}</td>\n</tr>\n",
            escape(e.help)
        ));
        for (name, help) in e.params {
            let name = escape(name);
            rows.push_str(&format!(
                "<tr{class}>\n  <td class='option'><input type='text' name='{name}' id='{action}-{name}' \
                 form='{action}' /></td>\n  <td class='home-data'><label for='{action}-{name}'>{name}: {}</label></td>\n</tr>\n",
                escape(help)
            ));
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n  <title>legate admin</title>\n<style>\n\
         .home-table {{ font-family: sans-serif; font-size: medium; border-collapse: collapse; }}\n\
         .home-data {{ text-align: left; padding: 4px; }}\n\
         .home-form {{ margin-bottom: 0; }}\n\
         .button-as-link {{ background: none; border: none; padding: 0; font: inherit; color: #069; \
         text-decoration: underline; cursor: pointer; }}\n\
         .gray {{ background-color: #dddddd; }}\n\
         .option {{ padding: 4px 4px 4px 20px; text-align: right; }}\n\
         </style>\n</head>\n<body>\n  <table class='home-table'>\n    <thead>\n      <tr>\n\
         <th class='home-data'>Command</th>\n<th class='home-data'>Description</th>\n      </tr>\n    </thead>\n\
         <tbody>\n{rows}    </tbody>\n  </table>\n</body>\n</html>\n"
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&#39;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_get_and_posts_forms() {
        let endpoints = [
            Endpoint { path: "/", help: "Admin home page", post_only: false, params: &[] },
            Endpoint { path: "/memory", help: "print memory", post_only: false, params: &[] },
            Endpoint { path: "/logging", help: "levels <all>", post_only: true, params: &[("level", "a level")] },
        ];
        let page = html(&endpoints);
        assert!(page.contains("<a href='memory'>memory</a>"), "{page}");
        assert!(page.contains("<form action='logging' method='post'"), "{page}");
        assert!(page.contains("name='level'"), "{page}");
        assert!(page.contains("levels &lt;all&gt;"), "{page}");
        assert!(!page.contains("href=''"), "{page}");
    }
}
