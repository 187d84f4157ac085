//! `named_enum!`: an enum whose variants have one name each, used on the
//! command line, in file names and in benchmark ids. It gives the enum
//! `ALL`, `name()` and `FromStr` (the one way to parse a name), with an
//! error that lists the names it knows.

/// Declares a fieldless enum whose variants carry a name:
///
/// ```ignore
/// named_enum! {
///     /// Docs.
///     pub enum Colour("colour") { Red = "red", Green = "green" }
/// }
/// ```
///
/// `"colour"` names the kind of thing in the parse error ("unknown colour
/// 'blue' (expected red or green)").
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The name used on the command line, in files and in benchmark ids.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::Error;

            fn from_str(s: &str) -> $crate::error::Result<$name> {
                $name::ALL
                    .into_iter()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| {
                        $crate::error::Error::invalid(
                            $what,
                            format!(
                                "unknown {} '{s}' (expected {})",
                                $what,
                                $crate::named::one_of(&$name::ALL.iter().map(|v| v.name()).collect::<Vec<_>>())
                            ),
                        )
                    })
            }
        }
    };
}

pub(crate) use named_enum;

/// `a`, `a or b`, `a, b or c`.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
