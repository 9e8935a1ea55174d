"""Issue 14, the per-block fixed cost: count(model) registers a root's tree from a cache checked by a
compiled walk, and rolls its results up on first read. Every test compares a count made through the
cache (and the lazy roll-up) with one made from scratch (cache emptied) or with hand counts."""
import gc
import weakref

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch import _tree, counter
from flopdispatch._demo import GPT


def fresh(model, run):
    """to_dict() of a count made with an empty tree cache (the registration walked from scratch)."""
    _tree._TREE_CACHE.clear()
    with fd.count(model) as c:
        run()
    return c.to_dict()


def cached(model, run):
    """to_dict() of a count made after another count of the same model (from the cache when valid)."""
    with fd.count(model):
        run()
    assert model in _tree._TREE_CACHE
    with fd.count(model) as c:
        run()
    return c.to_dict()


def both(model, run):
    a, b = fresh(model, run), cached(model, run)
    for d in (a, b):
        d.pop("meta")
    return a, b


def test_gpt_with_tied_weights_is_the_same_through_the_cache():
    torch.manual_seed(0)
    gpt = GPT(layers=2, heads=2, d=16, vocab=50, context=8, device="cpu")
    idx = torch.randint(0, 50, (1, 8))

    def step():
        gpt.zero_grad(set_to_none=True)  # each step the same work (no gradient accumulation)
        gpt(idx, targets=idx).backward()

    a, b = both(gpt, step)
    assert a == b
    # the tied lm_head: 50 * 16 = 800 parameters shared with wte, counted once at the root
    assert {m["name"]: m for m in a["modules"]}["lm_head"]["shared_params"] == 800


def test_cache_entry_is_reused_while_the_tree_is_unchanged():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with fd.count(model):
        model(torch.randn(1, 2))
    entry = _tree._TREE_CACHE[model]
    with fd.count(model):
        model(torch.randn(1, 2))
    assert _tree._TREE_CACHE[model] is entry


@pytest.mark.parametrize("change", ["replace", "append", "delete", "rename", "freeze", "retie", "new_tensor",
                                    "reorder", "set_class"])
def test_every_change_of_the_tree_is_seen(change):
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.blocks = nn.ModuleList([nn.Linear(4, 4)])

        def forward(self, x):
            for m in self.children():  # in registration order, whatever their names
                for layer in (m if isinstance(m, nn.ModuleList) else [m]):
                    x = layer(x)
            return x

    class Linear2(nn.Linear):
        pass

    net = Net()
    x = torch.randn(2, 4)
    with fd.count(net) as before:
        net(x)
    if change == "replace":
        net.b = nn.Linear(4, 4, bias=False)  # 16 + 4 -> 16 parameters
    elif change == "append":
        net.blocks.append(nn.Linear(4, 4))
    elif change == "delete":
        del net.blocks[0]
    elif change == "rename":
        net._modules["c"] = net._modules.pop("b")
    elif change == "freeze":
        net.a.weight.requires_grad_(False)
    elif change == "retie":
        net.b.weight = net.a.weight
    elif change == "new_tensor":
        net.a.weight.data = torch.randn(4, 4)  # the same Parameter, new storage: no change to the tree
        net.b.bias = nn.Parameter(torch.zeros(4))  # a new tensor object
    elif change == "reorder":
        net._modules = dict(reversed(list(net._modules.items())))
    elif change == "set_class":
        net.a.__class__ = Linear2
    with fd.count(net) as after:
        net(x)
    got = after.to_dict()
    want = fresh(net, lambda: net(x))
    for d in (got, want):
        d.pop("meta")
    assert got == want
    if change == "replace":
        assert before.module("b").params == 20 and after.module("b").params == 16  # 4 * 4 + 4 = 20; 4 * 4 = 16
    if change == "freeze":
        assert after.trainable_params == before.trainable_params - 16  # a.weight: 4 * 4 = 16
    if change == "retie":
        # b.weight is now a.weight: the root holds 60 - 16 = 44 distinct parameters
        assert after.params == before.params - 16 and after.module("b").shared_params == 16
    if change == "rename":
        assert "c" in after.module_names and "b" not in after.module_names
    if change == "set_class":
        assert after.module("a").type == "Linear2"


def test_the_cache_keeps_no_model_alive():
    model = nn.Sequential(nn.Linear(2, 2))
    with fd.count(model):
        model(torch.randn(1, 2))
    ref = weakref.ref(model)
    weight = weakref.ref(model[0].weight)
    del model
    gc.collect()
    assert ref() is None and weight() is None


def test_ignore_through_the_cache():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))
    x = torch.tensor([[1, 2, 3]])
    with fd.count(model):
        model(x)
    with fd.count(model, ignore=nn.Embedding) as c:
        model(x)
    assert c.ignored_modules == ["0"]
    assert c.flops == 2 * 3 * 4 * 4 + 3 * 4  # 3 tokens x Linear(4, 4): 2 * 48 MACs + 12 bias adds = 108


def test_a_tree_with_its_own_named_modules_is_registered_without_the_cache():
    class Odd(nn.Sequential):
        def named_modules(self, *args, **kwargs):  # its children in reverse order
            yield "", self
            yield "1", self[1]
            yield "0", self[0]

    model = Odd(nn.Linear(2, 2), nn.Linear(2, 2))
    _tree._TREE_CACHE.clear()
    with fd.count(model) as c:
        model(torch.randn(1, 2))
    assert model not in _tree._TREE_CACHE
    assert c.module_names == ["", "1", "0"]
    assert c.module("0").macs == 2 * 2  # 1 token x Linear(2, 2)


def test_results_are_rolled_up_after_the_block_from_the_recorders_table():
    model = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2))
    with fd.count(model) as c:
        model(torch.randn(4, 3))
    assert c._results is None  # nothing rolled up at exit
    # 4 x (3 x 5 + 5 x 2) = 100 MACs; FLOPs 2 * 100 + bias adds 4 * 5 + 4 * 2 = 228
    assert (c.macs, c.flops) == (100, 228)
    assert c._results is None  # totals are summed by the recorder, no roll-up
    assert c.module("1").macs == 4 * 5 * 2  # 40
    assert c._results is not None
    assert c.totals == c._collect().totals


def test_add_modules_refuses_parent_indices_that_name_no_earlier_module():
    # The recorder walks parent indices when it rolls scopes up: an index past the modules
    # registered so far (or below -1) would read outside its table, so it is refused whole.
    mode = counter._CountingMode()
    pair = [torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)]
    for parents in ([0, -1], [-1, 2], [-2, 0], [-1, 1]):
        with pytest.raises(ValueError, match="earlier module"):
            mode.add_modules(pair, parents)
    assert mode.add_modules(pair, [-1, 0]) == 0  # nothing was registered by the refused calls
