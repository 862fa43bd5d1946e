//! The suites whose every test runs twice, once on each way a shop hands
//! refundd its requests: the built-in orders table, and a shop's own tables
//! (the tutorial shop's) described through `shop.*`.

/// `in_both_modes!(a, b)`: each named `async fn(Rig)` of the calling module
/// becomes a module of two tests, `built_in_orders_table` and
/// `tutorial_shop`. `in_both_modes!(in SCHEMA; a, b)`, `SCHEMA` a constant
/// of the calling module, keeps refundd's records in that schema
/// (`database.schema`); without it, in the default one.
macro_rules! in_both_modes {
    (in $schema:ident; $($name:ident),* $(,)?) => {
        $crate::common::in_both_modes!(@schema super::$schema; $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::common::in_both_modes!(@schema $crate::common::DEFAULT_SCHEMA; $($name),*);
    };
    (@schema $schema:expr; $($name:ident),*) => {$(
        mod $name {
            #[tokio::test]
            async fn built_in_orders_table() {
                super::$name($crate::common::Rig::new_in($schema).await).await
            }

            #[tokio::test]
            async fn tutorial_shop() {
                let shop = &refundd::ops::shop_examples::TUTORIAL;
                super::$name($crate::common::Rig::in_shop_in(shop, $schema).await).await
            }
        }
    )*};
}

pub(crate) use in_both_modes;
