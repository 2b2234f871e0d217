//! The handler trait: one method per message type, each defaulting to "not handled" — the Rust
//! form of the seed's `AbstractConsumer.on_get_report` and friends. Generated from the model's one
//! list of message types, so a new type cannot be forgotten here.

use crate::client::Client;
use crate::incoming::Incoming;
use ebadge_model::{ExtensionMessage, Message};
use std::future::Future;

/// What a handler did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The application dealt with it.
    Yes,
    /// No method for this type was written: the client counts and logs it.
    No,
}

macro_rules! define_handler {
    ($( $level:ident $variant:ident $name:literal ),+ $(,)?) => {
        paste::paste! {
            /// Receives typed messages. Override the methods for the types you handle; the others
            /// answer [`Handled::No`]. The message is acknowledged after the method returns.
            ///
            /// ```no_run
            /// use ebadge_bus::{Client, Handled, Handler, Incoming};
            /// use ebadge_model::GetStatusReport;
            ///
            /// struct Hub;
            /// impl Handler for Hub {
            ///     async fn on_get_status_report(&mut self, client: &Client, incoming: &Incoming, _: &GetStatusReport) -> Handled {
            ///         println!("{} asks for our status", incoming.from);
            ///         Handled::Yes
            ///     }
            /// }
            /// ```
            pub trait Handler: Send {
                $(
                    #[doc = concat!("A `", $name, "` message arrived.")]
                    fn [<on_ $variant:snake>](
                        &mut self,
                        client: &Client,
                        incoming: &Incoming,
                        message: &ebadge_model::$variant,
                    ) -> impl Future<Output = Handled> + Send {
                        let _ = (client, incoming, message);
                        async { Handled::No }
                    }
                )+

                /// An `ext_` message type arrived.
                fn on_extension(
                    &mut self,
                    client: &Client,
                    incoming: &Incoming,
                    message: &ExtensionMessage,
                ) -> impl Future<Output = Handled> + Send {
                    let _ = (client, incoming, message);
                    async { Handled::No }
                }
            }

            /// Calls the handler method for the incoming message's type.
            pub async fn dispatch<H: Handler>(handler: &mut H, client: &Client, incoming: &Incoming) -> Handled {
                match &incoming.message {
                    $( Message::$variant(m) => handler.[<on_ $variant:snake>](client, incoming, m).await, )+
                    Message::Extension(m) => handler.on_extension(client, incoming, m).await,
                }
            }
        }
    };
}

ebadge_model::for_each_message_type!(define_handler);

impl Client {
    /// Runs `handler` on every incoming message until the client closes, acknowledging each
    /// after its method returns.
    pub async fn serve<H: Handler>(&self, mut handler: H) {
        let Some(mut inbox) = self.inbox() else {
            tracing::error!("serve: the inbox was taken already");
            return;
        };
        while let Some(incoming) = inbox.next().await {
            if dispatch(&mut handler, self, &incoming).await == Handled::No {
                self.count_unhandled();
                tracing::info!(msg = incoming.message.type_name(), from = %incoming.from, "no handler for this message type");
            }
            incoming.ack();
        }
    }
}
