"""`blip2-search serve --ray`: the same app on Ray Serve over a collection split into shards.

`deployments`: what runs in the replicas (a shard, a model part, the FastAPI ingress);
`remote`: what the ingress holds instead of local objects (`RayShards`, `RemoteEngine`);
`launch`: the application, deployed on a cluster. The only package, with `indexer.ray`,
that imports Ray.
"""
