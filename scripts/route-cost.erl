%% The broker's cost of routing one message, with and without the exchange-to-exchange hop:
%% a pair exchange (two hops to the inbox) against the receiver's incoming exchange (one).
%% Run on a local broker provisioned with docs/examples/registry.toml:
%%   HOME=D/node/home /usr/lib/rabbitmq/bin/rabbitmqctl -n NODE eval "$(cat scripts/route-cost.erl)"
%% (NODE is `name` in D/broker.toml). Each entry: {exchange, destinations, microseconds per route}.
Route = fun(XBin, Key, N) ->
  XName = rabbit_misc:r(<<"/">>, exchange, XBin),
  X = rabbit_exchange:lookup_or_die(XName),
  M0 = rabbit_basic:message(XName, Key, [], <<"{}">>),
  Msg = case M0 of {ok, M} -> M; M -> M end,
  Del = rabbit_basic:delivery(false, false, Msg, undefined),
  Dests = rabbit_exchange:route(X, Del),
  {T, _} = timer:tc(fun() -> lists:foreach(fun(_) -> rabbit_exchange:route(X, Del) end, lists:seq(1, N)) end),
  {XBin, Dests, T / N}
end,
[Route(<<"vpp-to-heh-b827ebea02c1">>, <<"activate">>, 200000),
 Route(<<"private-heh-b827ebea02c1-in">>, <<"activate">>, 200000),
 Route(<<"vpp-to-heh-b827ebea02c1">>, <<"activate">>, 200000),
 Route(<<"private-heh-b827ebea02c1-in">>, <<"activate">>, 200000)].
