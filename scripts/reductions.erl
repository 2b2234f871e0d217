%% Where a node's CPU goes, by kind of Erlang process: starts a sampler on the node that appends,
%% once a second for SECONDS, the reductions of all living processes summed by kind (the module
%% of their initial call: rabbit_channel, rabbit_reader, rabbit_amqqueue_process, ra_server_proc,
%% tls_connection …) to /tmp/reductions-NODE.log, one Erlang term a line: {MillisSinceEpoch, #{Kind => Reductions}}.
%% Subtract two lines to get what each kind did in between (a process that ended in between is
%% missed). Run on each node of a local broker or cluster:
%%   HOME=D/node/home /usr/lib/rabbitmq/bin/rabbitmqctl -n NODE eval "$(sed s/SECONDS/600/ scripts/reductions.erl)"
%% (NODE is `name` in D/broker.toml; a cluster's nodes are listed there too). Reading the 30,000
%% processes of 5,000 connections takes a node some tens of milliseconds a second.
Path = "/tmp/reductions-" ++ atom_to_list(node()) ++ ".log",
Kind = fun(P) ->
  case erlang:process_info(P, [dictionary, initial_call, reductions]) of
    undefined -> undefined;
    [{dictionary, D}, {initial_call, {M0, _, _}}, {reductions, R}] ->
      M = case lists:keyfind('$initial_call', 1, D) of {_, {M1, _, _}} -> M1; _ -> M0 end,
      {M, R}
  end
end,
Snap = fun() ->
  lists:foldl(fun(P, Acc) ->
    case Kind(P) of
      undefined -> Acc;
      {M, R} -> maps:update_with(M, fun(V) -> V + R end, R, Acc)
    end
  end, #{}, erlang:processes())
end,
Loop = fun Loop(N) when N > 0 ->
             {ok, F} = file:open(Path, [append]),
             io:format(F, "~w.~n", [{erlang:system_time(millisecond), Snap()}]),
             file:close(F),
             timer:sleep(1000),
             Loop(N - 1);
           Loop(_) -> ok
       end,
spawn(fun() -> Loop(SECONDS) end),
{sampling, Path}.
