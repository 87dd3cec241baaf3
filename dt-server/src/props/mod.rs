//! Java `.properties` files as the reference's distribution reads them.
//!
//! [`Properties`] parses the syntax with the JDK's rules (comments, the three
//! separators, continuations, escapes, ISO-8859-1 bytes); [`VarSource`] substitutes
//! `${NAME:default}`; [`PropReader`] turns values into typed fields with the
//! reference's `PropsUtil` conversions (trim, blank = absent, Java integer and boolean
//! syntax, comma-separated arrays). Errors name the file, line and key.
//!
//! ```
//! use dt_server::props::{PropReader, Properties, VarSource};
//!
//! let p = Properties::parse_str("# c\ndataDir = ${DATA_DIR:./data}\nsyncForce : FALSE\n").unwrap();
//! let vars = VarSource::fixed([("DATA_DIR", "/srv/dt")]);
//! let r = PropReader::new(&p, &vars, "");
//! let (mut dir, mut sync) = (String::new(), true);
//! r.string("dataDir", &mut dir).unwrap();
//! r.boolean("syncForce", &mut sync).unwrap();
//! assert_eq!((dir.as_str(), sync), ("/srv/dt", false));
//! ```

mod parser;
mod value;
mod vars;

pub use parser::{escape_key, escape_value, PropEntry, Properties, PropsError};
pub use value::{java_trim, PropReader, ValueError, ValueProblem};
pub use vars::{VarError, VarSource};
